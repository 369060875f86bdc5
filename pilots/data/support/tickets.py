"""Writes the support-triage data files from the ticket list below (run once; the CSVs are committed).

Tickets were written for this project. Labels: department (billing, shipping, technical, account),
urgency (low, medium, high), language (en, ja, fr, de, es).
"""

import csv
from pathlib import Path

TICKETS = [
    # (ticket, department, urgency, language)
    ("I was charged twice for my March invoice, please refund one payment.", "billing", "medium", "en"),
    ("My parcel says delivered but nothing arrived at my door.", "shipping", "high", "en"),
    ("The app crashes every time I open the settings page.", "technical", "medium", "en"),
    ("How do I change the email address on my profile?", "account", "low", "en"),
    ("Our whole team cannot log in since this morning, production is down!", "technical", "high", "en"),
    ("Can I get a copy of last year's receipts for my tax return?", "billing", "low", "en"),
    ("The box arrived crushed and the glass inside is broken.", "shipping", "medium", "en"),
    ("Someone changed my password without my permission, please lock my account now.", "account", "high", "en"),
    ("請求書の金額が契約と違います。確認してください。", "billing", "medium", "ja"),
    ("荷物がまだ届きません。注文から二週間経っています。", "shipping", "medium", "ja"),
    ("アプリにログインできません。エラーコード500が出ます。", "technical", "high", "ja"),
    ("登録しているメールアドレスを変更したいです。", "account", "low", "ja"),
    ("Ma carte a été débitée deux fois pour la même commande.", "billing", "medium", "fr"),
    ("Le colis est bloqué à la douane depuis dix jours.", "shipping", "medium", "fr"),
    ("Le site affiche une page blanche après la connexion.", "technical", "medium", "fr"),
    ("Je voudrais supprimer mon compte et mes données.", "account", "low", "fr"),
    ("Ich wurde nach der Kündigung weiterhin belastet.", "billing", "high", "de"),
    ("Die Lieferung kam an die falsche Adresse.", "shipping", "medium", "de"),
    ("Die Synchronisierung funktioniert seit dem Update nicht mehr.", "technical", "medium", "de"),
    ("Wie kann ich einen zweiten Benutzer zu meinem Konto hinzufügen?", "account", "low", "de"),
    ("Me cobraron una suscripción que ya había cancelado.", "billing", "medium", "es"),
    ("Mi pedido llegó incompleto, faltan dos artículos.", "shipping", "medium", "es"),
    ("La aplicación no guarda los cambios y pierdo todo mi trabajo.", "technical", "high", "es"),
    ("Olvidé mi contraseña y el correo de recuperación no llega.", "account", "medium", "es"),
    ("Please update the VAT number printed on our invoices.", "billing", "low", "en"),
    ("Tracking has not updated for a week, where is my order?", "shipping", "medium", "en"),
    ("The export to CSV button does nothing.", "technical", "low", "en"),
    ("I want to rename our organisation in the account settings.", "account", "low", "en"),
    ("Payment failed but the money left my bank account, I need it back today.", "billing", "high", "en"),
    ("Courier left the package in the rain and everything is soaked.", "shipping", "medium", "en"),
    ("The API returns 503 errors for all our requests, our checkout is broken.", "technical", "high", "en"),
    ("Please add my colleague as an administrator.", "account", "low", "en"),
    ("I see a charge from you that I do not recognise.", "billing", "high", "en"),
    ("Can you deliver to a PO box?", "shipping", "low", "en"),
    ("Notifications stopped arriving on my phone.", "technical", "low", "en"),
    ("I got locked out after too many login attempts.", "account", "medium", "en"),
    ("支払い方法をクレジットカードから銀行振込に変えたいです。", "billing", "low", "ja"),
    ("配達先の住所を変更できますか。", "shipping", "low", "ja"),
    ("データが全部消えてしまいました。至急対応してください。", "technical", "high", "ja"),
    ("アカウントが乗っ取られたようです。すぐに停止してください。", "account", "high", "ja"),
    ("返金はいつ頃振り込まれますか。", "billing", "low", "ja"),
    ("届いた商品が注文と違います。", "shipping", "medium", "ja"),
    ("Je n'ai pas reçu ma facture du mois dernier.", "billing", "low", "fr"),
    ("Le livreur n'est jamais passé, le suivi indique une erreur.", "shipping", "medium", "fr"),
    ("Impossible de téléverser des fichiers, tout notre service est bloqué.", "technical", "high", "fr"),
    ("Quelqu'un s'est connecté à mon compte depuis l'étranger, aidez-moi vite.", "account", "high", "fr"),
    ("Können Sie mir eine Rechnung mit Firmenadresse ausstellen?", "billing", "low", "de"),
    ("Das Paket ist beschädigt angekommen.", "shipping", "medium", "de"),
    ("Der Server ist komplett ausgefallen, keiner kann arbeiten!", "technical", "high", "de"),
    ("Ich möchte mein Passwort ändern.", "account", "low", "de"),
    ("Quiero una factura con los datos de mi empresa.", "billing", "low", "es"),
    ("El repartidor dejó el paquete con un vecino que no conozco.", "shipping", "medium", "es"),
    ("El sistema de pagos de nuestra tienda está caído desde hace una hora.", "technical", "high", "es"),
    ("¿Cómo cambio el nombre de usuario de mi cuenta?", "account", "low", "es"),
    ("The discount code was not applied and I paid full price.", "billing", "medium", "en"),
    ("I ordered express shipping but it is taking standard time.", "shipping", "medium", "en"),
    ("Search results are empty even for products I know exist.", "technical", "medium", "en"),
    ("Please merge my two accounts into one.", "account", "low", "en"),
    ("We were billed for 50 seats but only have 20 users.", "billing", "medium", "en"),
    ("My order was sent back to the warehouse by mistake.", "shipping", "medium", "en"),
    ("The dashboard takes more than a minute to load.", "technical", "medium", "en"),
    ("Two-factor codes are not accepted, I cannot access anything urgent.", "account", "high", "en"),
    ("年間プランの料金が二重に請求されています。", "billing", "high", "ja"),
    ("配送業者の連絡先を教えてください。", "shipping", "low", "ja"),
    ("画面が固まって操作できません。", "technical", "medium", "ja"),
    ("パスワードを忘れました。", "account", "medium", "ja"),
]
# Few-shot examples: chosen so every label of every task appears at least once.
EXAMPLE_ROWS = [0, 1, 2, 3, 7, 8, 10, 12, 17, 21]
TASKS = {"department": 1, "urgency": 2, "language": 3}


def main() -> None:
    here = Path(__file__).parent
    for task, column in TASKS.items():
        examples = [i for i in range(len(TICKETS)) if i in EXAMPLE_ROWS]
        evals = [i for i in range(len(TICKETS)) if i not in EXAMPLE_ROWS]
        for name, rows in (("examples", examples), ("eval", evals)):
            with open(here / f"{task}_{name}.csv", "w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(["id", "input", "output"])
                writer.writerows((f"t{i + 1:03d}", TICKETS[i][0], TICKETS[i][column]) for i in rows)


if __name__ == "__main__":
    main()
