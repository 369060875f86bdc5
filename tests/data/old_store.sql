-- A run store as roi wrote it at commit a9ec9de, before its migrations had descriptive names:
-- two runs of pilots/superposition-probe.yaml (--limit 1) with the fake backend of tests/fakes.py,
-- the first accepted as baseline, the second with one failed call and 30 probe rows. Dumped with
-- sqlite3 iterdump. tests/test_store.py opens it with the current code.
BEGIN TRANSACTION;
CREATE TABLE _roi_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL);
INSERT INTO "_roi_migrations" VALUES('m001_initial','2026-11-30 08:42:48');
INSERT INTO "_roi_migrations" VALUES('m0701_call_cache','2026-11-30 08:42:48');
INSERT INTO "_roi_migrations" VALUES('m0702_baselines','2026-11-30 08:42:48');
INSERT INTO "_roi_migrations" VALUES('m0501_probe','2026-11-30 08:42:48');
INSERT INTO "_roi_migrations" VALUES('m0502_probe_method','2026-11-30 08:42:48');
CREATE TABLE baselines (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        pilot TEXT NOT NULL,
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        accepted_at TEXT NOT NULL
    );
INSERT INTO "baselines" VALUES(1,'superposition-probe','20261130-084248-05c275','2026-11-30T08:42:49+00:00');
CREATE TABLE calls (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        call_id TEXT NOT NULL,         -- model/mode/... : stable across runs of one pilot
        model TEXT NOT NULL,
        mode TEXT NOT NULL,
        prompt TEXT NOT NULL,
        raw_output TEXT,
        prompt_tokens INTEGER,
        cached_prompt_tokens INTEGER,
        output_tokens INTEGER,
        latency_s REAL NOT NULL,
        backoff_s REAL NOT NULL DEFAULT 0,
        retries INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL,                 -- NULL: unknown, never 0 for unknown
        n_items INTEGER NOT NULL,
        error TEXT,
        finished_at TEXT NOT NULL, cache_key TEXT, cached INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (run_id, call_id)
    );
INSERT INTO "calls" VALUES('20261130-084248-05c275','gemma-270m/single:number_en:1','gemma-270m','single','Write the number as an English word.

Input: 1
Output: one

Input: 2
Output: two

Input: 4
Output: four

Input: 5
Output: five

Input: 6
Output: six

Input: 7
Output: seven

Input: 8
Output: eight

Input: 9
Output: nine

Input: 3
Output:',' three
',59,NULL,3,0.1,0.0,0,1.1111111111111113337e-05,1,NULL,'2026-11-30T08:42:48+00:00','3149241be0e1ae874a34c984f98ce14cbd901f5e6a8e7af85b20a601c8656c6a',0);
INSERT INTO "calls" VALUES('20261130-084248-05c275','gemma-270m/single:number_fr:1','gemma-270m','single','Write the number as a French word.

Input: 1
Output: un

Input: 2
Output: deux

Input: 4
Output: quatre

Input: 5
Output: cinq

Input: 6
Output: six

Input: 7
Output: sept

Input: 8
Output: huit

Input: 9
Output: neuf

Input: 3
Output:',' trois
',58,NULL,3,0.1,0.0,0,1.1111111111111113337e-05,1,NULL,'2026-11-30T08:42:48+00:00','bce0f666cec25c0d3a0fc8ff24ffaa9fcbcd4c0334436734e12565954a726cda',0);
INSERT INTO "calls" VALUES('20261130-084248-05c275','gemma-270m/single:plus_one:1','gemma-270m','single','Add one to the number.

Input: 1
Output: 2

Input: 2
Output: 3

Input: 4
Output: 5

Input: 5
Output: 6

Input: 6
Output: 7

Input: 7
Output: 8

Input: 8
Output: 9

Input: 9
Output: 10

Input: 3
Output:',' 4
',50,NULL,3,0.1,0.0,0,1.1111111111111113337e-05,1,NULL,'2026-11-30T08:42:48+00:00','8809873860abb1101aae594da5f96bf39d2d7c294445218afca80758f091e426',0);
INSERT INTO "calls" VALUES('20261130-084248-05c275','gemma-270m/mixed:g0:0','gemma-270m','mixed','Answer several tasks at once. Each query names its task; answer each on its own line A[n].
Tasks:
- number_en: Write the number as an English word.
- number_fr: Write the number as a French word.
- plus_one: Add one to the number.

Q[1] (number_fr): 1
Q[2] (plus_one): 1
Q[3] (number_en): 1
A[1] (number_fr) 1 -> un
A[2] (plus_one) 1 -> 2
A[3] (number_en) 1 -> one

Q[1] (plus_one): 2
Q[2] (number_fr): 2
Q[3] (number_en): 2
A[1] (plus_one) 2 -> 3
A[2] (number_fr) 2 -> deux
A[3] (number_en) 2 -> two

Q[1] (number_en): 4
Q[2] (number_fr): 4
Q[3] (plus_one): 4
A[1] (number_en) 4 -> four
A[2] (number_fr) 4 -> quatre
A[3] (plus_one) 4 -> 5

Q[1] (plus_one): 5
Q[2] (number_en): 5
Q[3] (number_fr): 5
A[1] (plus_one) 5 -> 6
A[2] (number_en) 5 -> five
A[3] (number_fr) 5 -> cinq

Q[1] (number_fr): 3
Q[2] (plus_one): 3
Q[3] (number_en): 3
A[1] (number_fr) 3 ->',' trois
A[2] (plus_one) 3 -> 4
A[3] (number_en) 3 -> three
',214,NULL,3,3.00000000000000044408e-01,0.0,0,3.33333333333333417069e-05,3,NULL,'2026-11-30T08:42:48+00:00','cfade28786ceeebd4d480818b73b3f9ef7db61ae4e27298df61ff73e7b2e53c5',0);
INSERT INTO "calls" VALUES('20261130-084249-2e7ecf','gemma-270m/single:number_en:1','gemma-270m','single','Write the number as an English word.

Input: 1
Output: one

Input: 2
Output: two

Input: 4
Output: four

Input: 5
Output: five

Input: 6
Output: six

Input: 7
Output: seven

Input: 8
Output: eight

Input: 9
Output: nine

Input: 3
Output:',' three
',59,NULL,3,0.1,0.0,0,1.1111111111111113337e-05,1,NULL,'2026-11-30T08:42:49+00:00','3149241be0e1ae874a34c984f98ce14cbd901f5e6a8e7af85b20a601c8656c6a',0);
INSERT INTO "calls" VALUES('20261130-084249-2e7ecf','gemma-270m/single:number_fr:1','gemma-270m','single','Write the number as a French word.

Input: 1
Output: un

Input: 2
Output: deux

Input: 4
Output: quatre

Input: 5
Output: cinq

Input: 6
Output: six

Input: 7
Output: sept

Input: 8
Output: huit

Input: 9
Output: neuf

Input: 3
Output:',' trois
',58,NULL,3,0.1,0.0,0,1.1111111111111113337e-05,1,NULL,'2026-11-30T08:42:49+00:00','bce0f666cec25c0d3a0fc8ff24ffaa9fcbcd4c0334436734e12565954a726cda',0);
INSERT INTO "calls" VALUES('20261130-084249-2e7ecf','gemma-270m/single:plus_one:1','gemma-270m','single','Add one to the number.

Input: 1
Output: 2

Input: 2
Output: 3

Input: 4
Output: 5

Input: 5
Output: 6

Input: 6
Output: 7

Input: 7
Output: 8

Input: 8
Output: 9

Input: 9
Output: 10

Input: 3
Output:',NULL,NULL,NULL,NULL,0.5,0.0,2,NULL,1,'HTTP 500 from fake','2026-11-30T08:42:49+00:00','8809873860abb1101aae594da5f96bf39d2d7c294445218afca80758f091e426',0);
INSERT INTO "calls" VALUES('20261130-084249-2e7ecf','gemma-270m/mixed:g0:0','gemma-270m','mixed','Answer several tasks at once. Each query names its task; answer each on its own line A[n].
Tasks:
- number_en: Write the number as an English word.
- number_fr: Write the number as a French word.
- plus_one: Add one to the number.

Q[1] (number_fr): 1
Q[2] (plus_one): 1
Q[3] (number_en): 1
A[1] (number_fr) 1 -> un
A[2] (plus_one) 1 -> 2
A[3] (number_en) 1 -> one

Q[1] (plus_one): 2
Q[2] (number_fr): 2
Q[3] (number_en): 2
A[1] (plus_one) 2 -> 3
A[2] (number_fr) 2 -> deux
A[3] (number_en) 2 -> two

Q[1] (number_en): 4
Q[2] (number_fr): 4
Q[3] (plus_one): 4
A[1] (number_en) 4 -> four
A[2] (number_fr) 4 -> quatre
A[3] (plus_one) 4 -> 5

Q[1] (plus_one): 5
Q[2] (number_en): 5
Q[3] (number_fr): 5
A[1] (plus_one) 5 -> 6
A[2] (number_en) 5 -> five
A[3] (number_fr) 5 -> cinq

Q[1] (number_fr): 3
Q[2] (plus_one): 3
Q[3] (number_en): 3
A[1] (number_fr) 3 ->',' trois
A[2] (plus_one) 3 -> 4
A[3] (number_en) 3 -> three
',214,NULL,3,3.00000000000000044408e-01,0.0,0,3.33333333333333417069e-05,3,NULL,'2026-11-30T08:42:49+00:00','cfade28786ceeebd4d480818b73b3f9ef7db61ae4e27298df61ff73e7b2e53c5',0);
CREATE TABLE items (
        run_id TEXT NOT NULL,
        call_id TEXT NOT NULL,
        model TEXT NOT NULL,
        mode TEXT NOT NULL,
        task TEXT NOT NULL,
        item_id TEXT NOT NULL,
        position INTEGER NOT NULL,     -- the query's place in its call (1-based)
        input TEXT NOT NULL,
        gold TEXT NOT NULL,
        answer TEXT,                   -- parsed answer; NULL when unparseable or the call failed
        parsed INTEGER NOT NULL,
        correct INTEGER NOT NULL,
        swap_with TEXT,                -- task whose query's gold answer this query got (same call)
        other_task_space TEXT,         -- task whose answer space the answer falls in, if not its own
        PRIMARY KEY (run_id, model, mode, task, item_id),
        FOREIGN KEY (run_id, call_id) REFERENCES calls(run_id, call_id)
    );
INSERT INTO "items" VALUES('20261130-084248-05c275','gemma-270m/single:number_en:1','gemma-270m','single','number_en','1',1,'3','three','three',1,1,NULL,NULL);
INSERT INTO "items" VALUES('20261130-084248-05c275','gemma-270m/single:number_fr:1','gemma-270m','single','number_fr','1',1,'3','trois','trois',1,1,NULL,NULL);
INSERT INTO "items" VALUES('20261130-084248-05c275','gemma-270m/single:plus_one:1','gemma-270m','single','plus_one','1',1,'3','4','4',1,1,NULL,NULL);
INSERT INTO "items" VALUES('20261130-084248-05c275','gemma-270m/mixed:g0:0','gemma-270m','mixed','number_fr','1',1,'3','trois','trois',1,1,NULL,NULL);
INSERT INTO "items" VALUES('20261130-084248-05c275','gemma-270m/mixed:g0:0','gemma-270m','mixed','plus_one','1',2,'3','4','4',1,1,NULL,NULL);
INSERT INTO "items" VALUES('20261130-084248-05c275','gemma-270m/mixed:g0:0','gemma-270m','mixed','number_en','1',3,'3','three','three',1,1,NULL,NULL);
INSERT INTO "items" VALUES('20261130-084249-2e7ecf','gemma-270m/single:number_en:1','gemma-270m','single','number_en','1',1,'3','three','three',1,1,NULL,NULL);
INSERT INTO "items" VALUES('20261130-084249-2e7ecf','gemma-270m/single:number_fr:1','gemma-270m','single','number_fr','1',1,'3','trois','trois',1,1,NULL,NULL);
INSERT INTO "items" VALUES('20261130-084249-2e7ecf','gemma-270m/mixed:g0:0','gemma-270m','mixed','number_fr','1',1,'3','trois','trois',1,1,NULL,NULL);
INSERT INTO "items" VALUES('20261130-084249-2e7ecf','gemma-270m/mixed:g0:0','gemma-270m','mixed','plus_one','1',2,'3','4','4',1,1,NULL,NULL);
INSERT INTO "items" VALUES('20261130-084249-2e7ecf','gemma-270m/mixed:g0:0','gemma-270m','mixed','number_en','1',3,'3','three','three',1,1,NULL,NULL);
CREATE TABLE probe (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        model TEXT NOT NULL,
        mixture TEXT NOT NULL,         -- e.g. 'number_en 0.50 + number_fr 0.50'
        prompt_index INTEGER NOT NULL,
        task TEXT NOT NULL,
        share REAL NOT NULL,           -- the task's share of the prompt's examples (0..1)
        query TEXT NOT NULL,
        answer TEXT NOT NULL,
        logprob REAL NOT NULL,         -- natural log of P(answer | prompt), teacher-forced
        probability REAL NOT NULL,
        answer_tokens INTEGER NOT NULL,
        in_beam INTEGER NOT NULL,      -- the answer is among the model's top beam-search continuations
        prompt_tokens INTEGER NOT NULL, method TEXT NOT NULL DEFAULT 'teacher_forcing', upper_bound INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (run_id, model, mixture, prompt_index, task)
    );
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 1.00',0,'number_en',1.0,'64','sixty-four',-1.62518929497774800019e-01,8.50000000000000088817e-01,2,1,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 1.00',0,'number_fr',0.0,'64','soixante-quatre',-3.21887582486820056359e+00,0.04,2,0,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 1.00',0,'plus_one',0.0,'64','65',-3.50655789731998179803e+00,3.00000000000000023592e-02,2,0,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 1.00',1,'number_en',1.0,'86','eighty-six',-1.62518929497774800019e-01,8.50000000000000088817e-01,2,1,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 1.00',1,'number_fr',0.0,'86','quatre-vingt-six',-3.21887582486820056359e+00,0.04,2,0,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 1.00',1,'plus_one',0.0,'86','87',-3.50655789731998179803e+00,3.00000000000000023592e-02,2,0,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 0.50 + number_fr 0.50',0,'number_en',0.5,'24','twenty-four',-7.98507696217771623103e-01,0.45,2,1,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 0.50 + number_fr 0.50',0,'number_fr',0.5,'24','vingt-quatre',-8.20980552069830227246e-01,0.44,2,1,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 0.50 + number_fr 0.50',0,'plus_one',0.0,'24','25',-3.50655789731998179803e+00,3.00000000000000023592e-02,2,0,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 0.50 + number_fr 0.50',1,'number_en',0.5,'70','seventy',-7.98507696217771623103e-01,0.45,2,1,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 0.50 + number_fr 0.50',1,'number_fr',0.5,'70','soixante-dix',-8.20980552069830227246e-01,0.44,2,1,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 0.50 + number_fr 0.50',1,'plus_one',0.0,'70','71',-3.50655789731998179803e+00,3.00000000000000023592e-02,2,0,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 0.80 + number_fr 0.20',0,'number_en',0.8,'18','eighteen',-3.71063681390831734407e-01,6.90000000000000168753e-01,2,1,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 0.80 + number_fr 0.20',0,'number_fr',0.2,'18','dix-huit',-1.60943791243410028179e+00,0.2,2,0,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 0.80 + number_fr 0.20',0,'plus_one',0.0,'18','19',-3.50655789731998179803e+00,3.00000000000000023592e-02,2,0,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 0.80 + number_fr 0.20',1,'number_en',0.8,'67','sixty-seven',-3.71063681390831734407e-01,6.90000000000000168753e-01,2,1,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 0.80 + number_fr 0.20',1,'number_fr',0.2,'67','soixante-sept',-1.60943791243410028179e+00,0.2,2,0,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 0.80 + number_fr 0.20',1,'plus_one',0.0,'67','68',-3.50655789731998179803e+00,3.00000000000000023592e-02,2,0,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 0.20 + number_fr 0.80',0,'number_en',0.2,'88','eighty-eight',-1.56064774826466834412e+00,2.10000000000000019984e-01,2,0,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 0.20 + number_fr 0.80',0,'number_fr',0.8,'88','quatre-vingt-huit',-3.85662480811984453854e-01,6.80000000000000159872e-01,2,1,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 0.20 + number_fr 0.80',0,'plus_one',0.0,'88','89',-3.50655789731998179803e+00,3.00000000000000023592e-02,2,0,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 0.20 + number_fr 0.80',1,'number_en',0.2,'45','forty-five',-1.56064774826466834412e+00,2.10000000000000019984e-01,2,0,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 0.20 + number_fr 0.80',1,'number_fr',0.8,'45','quarante-cinq',-3.85662480811984453854e-01,6.80000000000000159872e-01,2,1,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 0.20 + number_fr 0.80',1,'plus_one',0.0,'45','46',-3.50655789731998179803e+00,3.00000000000000023592e-02,2,0,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 0.33 + number_fr 0.33 + plus_one 0.33',0,'number_en',3.33333333333333314829e-01,'40','forty',-1.14990558305566037411e+00,3.16666666666666651863e-01,2,0,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 0.33 + number_fr 0.33 + plus_one 0.33',0,'number_fr',3.33333333333333314829e-01,'40','quarante',-1.1819938976071608927e+00,3.06666666666666642981e-01,2,0,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 0.33 + number_fr 0.33 + plus_one 0.33',0,'plus_one',3.33333333333333314829e-01,'40','41',-1.21514610492406127661e+00,2.966666666666666341e-01,2,0,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 0.33 + number_fr 0.33 + plus_one 0.33',1,'number_en',3.33333333333333314829e-01,'14','fourteen',-1.14990558305566037411e+00,3.16666666666666651863e-01,2,0,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 0.33 + number_fr 0.33 + plus_one 0.33',1,'number_fr',3.33333333333333314829e-01,'14','quatorze',-1.1819938976071608927e+00,3.06666666666666642981e-01,2,0,300,'teacher_forcing',0);
INSERT INTO "probe" VALUES('20261130-084249-2e7ecf','gemma-270m','number_en 0.33 + number_fr 0.33 + plus_one 0.33',1,'plus_one',3.33333333333333314829e-01,'14','15',-1.21514610492406127661e+00,2.966666666666666341e-01,2,0,300,'teacher_forcing',0);
CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        pilot TEXT NOT NULL,
        pilot_path TEXT NOT NULL,
        pilot_sha256 TEXT NOT NULL,
        pilot_json TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL,          -- running | complete | failed
        item_limit INTEGER,
        environment_json TEXT NOT NULL DEFAULT '{}',
        summary_json TEXT
    , decision_json TEXT);
INSERT INTO "runs" VALUES('20261130-084248-05c275','superposition-probe','pilots/superposition-probe.yaml','c9757810ff98d9a84f6c012bed6a8873e37b5d80f525c0421a2d6c3fb5162ceb','{"pilot":"superposition-probe","business_unit":"Research demo","owner":"analyst@example.com","description":"Does the model keep several tasks alive at once, in proportion to their examples? Numbers 1-99 written as an English word, a French word, or plus one. The probe reads the probability of each task''s answer to one query under prompts that mix the tasks'' examples in given shares.\n","models":[{"name":"gemma-270m","backend":"transformers","model":"embedded","device":"auto","dtype":"auto","max_batch":null,"cost":{"usd_per_hour":0.4},"base_url":null,"api_key_env":null,"endpoint":"chat","max_concurrency":4,"timeout_s":60.0,"max_retries":4,"price":null}],"tasks":[{"name":"number_en","instruction":"Write the number as an English word.","examples":"data/probe/number_en_examples.csv","eval":"data/probe/number_en_eval.csv","scorer":{"type":"exact","case_sensitive":false,"strip_punctuation":true,"collapse_whitespace":true},"monthly_volume":0,"cost_per_error_usd":0.0,"max_answer_tokens":16},{"name":"number_fr","instruction":"Write the number as a French word.","examples":"data/probe/number_fr_examples.csv","eval":"data/probe/number_fr_eval.csv","scorer":{"type":"exact","case_sensitive":false,"strip_punctuation":false,"collapse_whitespace":true},"monthly_volume":0,"cost_per_error_usd":0.0,"max_answer_tokens":16},{"name":"plus_one","instruction":"Add one to the number.","examples":"data/probe/plus_one_examples.csv","eval":"data/probe/plus_one_eval.csv","scorer":{"type":"numeric","tolerance":0.0,"relative_tolerance":0.0},"monthly_volume":0,"cost_per_error_usd":0.0,"max_answer_tokens":16}],"modes":{"single":{"enabled":true,"shots":8},"mixed":{"enabled":true,"shots_per_task":4,"tasks_per_call":"all"}},"economics":{"pilot_investment_usd":0.0,"horizon_months":12},"gates":{"max_accuracy_drop":0.05,"min_cost_saving":0.2,"max_p95_latency_s":10.0,"max_swap_rate":0.02,"max_unparseable_rate":0.05,"min_items_per_task":30},"report":{"language":"en"},"operations":{"rollout_owner":null,"reviewers":[],"escalation_contact":null,"escalation_hours":24.0,"review_share":0.05,"audit_every_days":30,"fallback":"single"},"notify":{"webhook_url_env":null,"timeout_s":10.0},"probe":{"tasks":["number_en","number_fr","plus_one"],"mixtures":[{"number_en":1.0},{"number_en":0.5,"number_fr":0.5},{"number_en":0.8,"number_fr":0.2},{"number_en":0.2,"number_fr":0.8},{"number_en":0.3333333333333333,"number_fr":0.3333333333333333,"plus_one":0.3333333333333333}],"examples_per_prompt":30,"prompts_per_mixture":24,"beam_width":0,"seed":null,"models":null,"api_method":"auto","top_logprobs":20,"max_calls_per_prompt":40},"seed":7}','2026-11-30T08:42:48+00:00','2026-11-30T08:42:48+00:00','complete',1,'{"python": "3.11.7", "host": "vm", "platform": "Linux-6.18.44-fc-v657-x86_64-with-glibc2.36", "gemma-270m": {"backend": "fake"}, "probe": {"gemma-270m": "probe skipped: the backend exposes no local model and tokenizer"}}','{"run_id": "20261130-084248-05c275", "pilot": "superposition-probe", "item_limit": 1, "cells": [{"model": "gemma-270m", "task": "number_en", "mode": "single", "accuracy": {"k": 1, "n": 1, "value": 1.0, "low": 0.20654931437723745, "high": 1.0}, "unparseable": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "swaps": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "other_task_space": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "latency_p50_s": 0.1, "latency_p95_s": 0.1, "latency_max_s": 0.1, "prompt_tokens_per_item": 59.0, "output_tokens_per_item": 3.0, "cost_per_item_usd": 1.1111111111111113e-05, "vs_single": null}, {"model": "gemma-270m", "task": "number_en", "mode": "mixed", "accuracy": {"k": 1, "n": 1, "value": 1.0, "low": 0.20654931437723745, "high": 1.0}, "unparseable": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "swaps": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "other_task_space": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "latency_p50_s": 0.30000000000000004, "latency_p95_s": 0.30000000000000004, "latency_max_s": 0.30000000000000004, "prompt_tokens_per_item": 71.33333333333333, "output_tokens_per_item": 1.0, "cost_per_item_usd": 1.1111111111111113e-05, "vs_single": {"n": 1, "diff": 0.0, "low": 0.0, "high": 0.0, "a_only": 0, "b_only": 0, "mcnemar_p": 1.0}}, {"model": "gemma-270m", "task": "number_fr", "mode": "single", "accuracy": {"k": 1, "n": 1, "value": 1.0, "low": 0.20654931437723745, "high": 1.0}, "unparseable": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "swaps": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "other_task_space": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "latency_p50_s": 0.1, "latency_p95_s": 0.1, "latency_max_s": 0.1, "prompt_tokens_per_item": 58.0, "output_tokens_per_item": 3.0, "cost_per_item_usd": 1.1111111111111113e-05, "vs_single": null}, {"model": "gemma-270m", "task": "number_fr", "mode": "mixed", "accuracy": {"k": 1, "n": 1, "value": 1.0, "low": 0.20654931437723745, "high": 1.0}, "unparseable": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "swaps": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "other_task_space": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "latency_p50_s": 0.30000000000000004, "latency_p95_s": 0.30000000000000004, "latency_max_s": 0.30000000000000004, "prompt_tokens_per_item": 71.33333333333333, "output_tokens_per_item": 1.0, "cost_per_item_usd": 1.1111111111111113e-05, "vs_single": {"n": 1, "diff": 0.0, "low": 0.0, "high": 0.0, "a_only": 0, "b_only": 0, "mcnemar_p": 1.0}}, {"model": "gemma-270m", "task": "plus_one", "mode": "single", "accuracy": {"k": 1, "n": 1, "value": 1.0, "low": 0.20654931437723745, "high": 1.0}, "unparseable": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "swaps": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "other_task_space": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "latency_p50_s": 0.1, "latency_p95_s": 0.1, "latency_max_s": 0.1, "prompt_tokens_per_item": 50.0, "output_tokens_per_item": 3.0, "cost_per_item_usd": 1.1111111111111113e-05, "vs_single": null}, {"model": "gemma-270m", "task": "plus_one", "mode": "mixed", "accuracy": {"k": 1, "n": 1, "value": 1.0, "low": 0.20654931437723745, "high": 1.0}, "unparseable": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "swaps": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "other_task_space": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "latency_p50_s": 0.30000000000000004, "latency_p95_s": 0.30000000000000004, "latency_max_s": 0.30000000000000004, "prompt_tokens_per_item": 71.33333333333333, "output_tokens_per_item": 1.0, "cost_per_item_usd": 1.1111111111111113e-05, "vs_single": {"n": 1, "diff": 0.0, "low": 0.0, "high": 0.0, "a_only": 0, "b_only": 0, "mcnemar_p": 1.0}}], "modes": [{"model": "gemma-270m", "mode": "mixed", "calls": 1, "failed_calls": 0, "items": 3, "compute_s": 0.30000000000000004, "items_per_s": 9.999999999999998, "prompt_tokens": 214, "output_tokens": 3, "cost_usd": 3.333333333333334e-05, "latency_p50_s": 0.30000000000000004, "latency_p95_s": 0.30000000000000004, "retries": 0, "backoff_s": 0.0}, {"model": "gemma-270m", "mode": "single", "calls": 3, "failed_calls": 0, "items": 3, "compute_s": 0.30000000000000004, "items_per_s": 9.999999999999998, "prompt_tokens": 167, "output_tokens": 9, "cost_usd": 3.333333333333334e-05, "latency_p50_s": 0.1, "latency_p95_s": 0.1, "retries": 0, "backoff_s": 0.0}]}','{"model": "gemma-270m", "stage": 0, "stage_name": "pilot", "outcome": "hold", "models": [{"model": "gemma-270m", "stage": 0, "outcome": "hold", "gates": [{"gate": "modes_compared", "task": null, "stage": 1, "status": "pass", "worst": null}, {"gate": "group_exists", "task": null, "stage": 1, "status": "pass", "worst": null}, {"gate": "items", "task": "number_en", "stage": 1, "status": "more_data", "worst": 1.0}, {"gate": "accuracy_drop", "task": "number_en", "stage": 1, "status": "more_data", "worst": -0.0}, {"gate": "unparseable_rate", "task": "number_en", "stage": 1, "status": "more_data", "worst": 0.7934506856227626}, {"gate": "swap_rate", "task": "number_en", "stage": 2, "status": "more_data", "worst": 0.7934506856227626}, {"gate": "items", "task": "number_fr", "stage": 1, "status": "more_data", "worst": 1.0}, {"gate": "accuracy_drop", "task": "number_fr", "stage": 1, "status": "more_data", "worst": -0.0}, {"gate": "unparseable_rate", "task": "number_fr", "stage": 1, "status": "more_data", "worst": 0.7934506856227626}, {"gate": "swap_rate", "task": "number_fr", "stage": 2, "status": "more_data", "worst": 0.7934506856227626}, {"gate": "items", "task": "plus_one", "stage": 1, "status": "more_data", "worst": 1.0}, {"gate": "accuracy_drop", "task": "plus_one", "stage": 1, "status": "more_data", "worst": -0.0}, {"gate": "unparseable_rate", "task": "plus_one", "stage": 1, "status": "more_data", "worst": 0.7934506856227626}, {"gate": "swap_rate", "task": "plus_one", "stage": 2, "status": "more_data", "worst": 0.7934506856227626}, {"gate": "cost_saving", "task": null, "stage": 1, "status": "fail", "worst": 0.0}, {"gate": "p95_latency", "task": null, "stage": 2, "status": "more_data", "worst": 0.30000000000000004}, {"gate": "operations", "task": null, "stage": 2, "status": "fail", "worst": null}, {"gate": "all_tasks_mixed", "task": null, "stage": 3, "status": "pass", "worst": null}]}]}');
INSERT INTO "runs" VALUES('20261130-084249-2e7ecf','superposition-probe','pilots/superposition-probe.yaml','c9757810ff98d9a84f6c012bed6a8873e37b5d80f525c0421a2d6c3fb5162ceb','{"pilot":"superposition-probe","business_unit":"Research demo","owner":"analyst@example.com","description":"Does the model keep several tasks alive at once, in proportion to their examples? Numbers 1-99 written as an English word, a French word, or plus one. The probe reads the probability of each task''s answer to one query under prompts that mix the tasks'' examples in given shares.\n","models":[{"name":"gemma-270m","backend":"transformers","model":"embedded","device":"auto","dtype":"auto","max_batch":null,"cost":{"usd_per_hour":0.4},"base_url":null,"api_key_env":null,"endpoint":"chat","max_concurrency":4,"timeout_s":60.0,"max_retries":4,"price":null}],"tasks":[{"name":"number_en","instruction":"Write the number as an English word.","examples":"data/probe/number_en_examples.csv","eval":"data/probe/number_en_eval.csv","scorer":{"type":"exact","case_sensitive":false,"strip_punctuation":true,"collapse_whitespace":true},"monthly_volume":0,"cost_per_error_usd":0.0,"max_answer_tokens":16},{"name":"number_fr","instruction":"Write the number as a French word.","examples":"data/probe/number_fr_examples.csv","eval":"data/probe/number_fr_eval.csv","scorer":{"type":"exact","case_sensitive":false,"strip_punctuation":false,"collapse_whitespace":true},"monthly_volume":0,"cost_per_error_usd":0.0,"max_answer_tokens":16},{"name":"plus_one","instruction":"Add one to the number.","examples":"data/probe/plus_one_examples.csv","eval":"data/probe/plus_one_eval.csv","scorer":{"type":"numeric","tolerance":0.0,"relative_tolerance":0.0},"monthly_volume":0,"cost_per_error_usd":0.0,"max_answer_tokens":16}],"modes":{"single":{"enabled":true,"shots":8},"mixed":{"enabled":true,"shots_per_task":4,"tasks_per_call":"all"}},"economics":{"pilot_investment_usd":0.0,"horizon_months":12},"gates":{"max_accuracy_drop":0.05,"min_cost_saving":0.2,"max_p95_latency_s":10.0,"max_swap_rate":0.02,"max_unparseable_rate":0.05,"min_items_per_task":30},"report":{"language":"en"},"operations":{"rollout_owner":null,"reviewers":[],"escalation_contact":null,"escalation_hours":24.0,"review_share":0.05,"audit_every_days":30,"fallback":"single"},"notify":{"webhook_url_env":null,"timeout_s":10.0},"probe":{"tasks":["number_en","number_fr","plus_one"],"mixtures":[{"number_en":1.0},{"number_en":0.5,"number_fr":0.5},{"number_en":0.8,"number_fr":0.2},{"number_en":0.2,"number_fr":0.8},{"number_en":0.3333333333333333,"number_fr":0.3333333333333333,"plus_one":0.3333333333333333}],"examples_per_prompt":30,"prompts_per_mixture":24,"beam_width":0,"seed":null,"models":null,"api_method":"auto","top_logprobs":20,"max_calls_per_prompt":40},"seed":7}','2026-11-30T08:42:49+00:00','2026-11-30T08:42:49+00:00','complete_with_failures',1,'{"python": "3.11.7", "host": "vm", "platform": "Linux-6.18.44-fc-v657-x86_64-with-glibc2.36", "gemma-270m": {"backend": "fake"}, "probe": {"gemma-270m": "probe skipped: the backend exposes no local model and tokenizer"}}','{"run_id": "20261130-084249-2e7ecf", "pilot": "superposition-probe", "item_limit": 1, "cells": [{"model": "gemma-270m", "task": "number_en", "mode": "single", "accuracy": {"k": 1, "n": 1, "value": 1.0, "low": 0.20654931437723745, "high": 1.0}, "unparseable": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "swaps": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "other_task_space": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "latency_p50_s": 0.1, "latency_p95_s": 0.1, "latency_max_s": 0.1, "prompt_tokens_per_item": 59.0, "output_tokens_per_item": 3.0, "cost_per_item_usd": 1.1111111111111113e-05, "vs_single": null}, {"model": "gemma-270m", "task": "number_en", "mode": "mixed", "accuracy": {"k": 1, "n": 1, "value": 1.0, "low": 0.20654931437723745, "high": 1.0}, "unparseable": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "swaps": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "other_task_space": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "latency_p50_s": 0.30000000000000004, "latency_p95_s": 0.30000000000000004, "latency_max_s": 0.30000000000000004, "prompt_tokens_per_item": 71.33333333333333, "output_tokens_per_item": 1.0, "cost_per_item_usd": 1.1111111111111113e-05, "vs_single": {"n": 1, "diff": 0.0, "low": 0.0, "high": 0.0, "a_only": 0, "b_only": 0, "mcnemar_p": 1.0}}, {"model": "gemma-270m", "task": "number_fr", "mode": "single", "accuracy": {"k": 1, "n": 1, "value": 1.0, "low": 0.20654931437723745, "high": 1.0}, "unparseable": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "swaps": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "other_task_space": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "latency_p50_s": 0.1, "latency_p95_s": 0.1, "latency_max_s": 0.1, "prompt_tokens_per_item": 58.0, "output_tokens_per_item": 3.0, "cost_per_item_usd": 1.1111111111111113e-05, "vs_single": null}, {"model": "gemma-270m", "task": "number_fr", "mode": "mixed", "accuracy": {"k": 1, "n": 1, "value": 1.0, "low": 0.20654931437723745, "high": 1.0}, "unparseable": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "swaps": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "other_task_space": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "latency_p50_s": 0.30000000000000004, "latency_p95_s": 0.30000000000000004, "latency_max_s": 0.30000000000000004, "prompt_tokens_per_item": 71.33333333333333, "output_tokens_per_item": 1.0, "cost_per_item_usd": 1.1111111111111113e-05, "vs_single": {"n": 1, "diff": 0.0, "low": 0.0, "high": 0.0, "a_only": 0, "b_only": 0, "mcnemar_p": 1.0}}, {"model": "gemma-270m", "task": "plus_one", "mode": "mixed", "accuracy": {"k": 1, "n": 1, "value": 1.0, "low": 0.20654931437723745, "high": 1.0}, "unparseable": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "swaps": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "other_task_space": {"k": 0, "n": 1, "value": 0.0, "low": 0.0, "high": 0.7934506856227626}, "latency_p50_s": 0.30000000000000004, "latency_p95_s": 0.30000000000000004, "latency_max_s": 0.30000000000000004, "prompt_tokens_per_item": 71.33333333333333, "output_tokens_per_item": 1.0, "cost_per_item_usd": 1.1111111111111113e-05, "vs_single": null}], "modes": [{"model": "gemma-270m", "mode": "mixed", "calls": 1, "failed_calls": 0, "items": 3, "compute_s": 0.30000000000000004, "items_per_s": 9.999999999999998, "prompt_tokens": 214, "output_tokens": 3, "cost_usd": 3.333333333333334e-05, "latency_p50_s": 0.30000000000000004, "latency_p95_s": 0.30000000000000004, "retries": 0, "backoff_s": 0.0}, {"model": "gemma-270m", "mode": "single", "calls": 3, "failed_calls": 1, "items": 2, "compute_s": 0.2, "items_per_s": 10.0, "prompt_tokens": 117, "output_tokens": 6, "cost_usd": 2.2222222222222227e-05, "latency_p50_s": 0.1, "latency_p95_s": 0.1, "retries": 2, "backoff_s": 0.0}]}','{"model": "gemma-270m", "stage": 0, "stage_name": "pilot", "outcome": "more_data", "models": [{"model": "gemma-270m", "stage": 0, "outcome": "more_data", "gates": [{"gate": "modes_compared", "task": null, "stage": 1, "status": "pass", "worst": null}, {"gate": "group_exists", "task": null, "stage": 1, "status": "pass", "worst": null}, {"gate": "items", "task": "number_en", "stage": 1, "status": "more_data", "worst": 1.0}, {"gate": "accuracy_drop", "task": "number_en", "stage": 1, "status": "more_data", "worst": -0.0}, {"gate": "unparseable_rate", "task": "number_en", "stage": 1, "status": "more_data", "worst": 0.7934506856227626}, {"gate": "swap_rate", "task": "number_en", "stage": 2, "status": "more_data", "worst": 0.7934506856227626}, {"gate": "items", "task": "number_fr", "stage": 1, "status": "more_data", "worst": 1.0}, {"gate": "accuracy_drop", "task": "number_fr", "stage": 1, "status": "more_data", "worst": -0.0}, {"gate": "unparseable_rate", "task": "number_fr", "stage": 1, "status": "more_data", "worst": 0.7934506856227626}, {"gate": "swap_rate", "task": "number_fr", "stage": 2, "status": "more_data", "worst": 0.7934506856227626}, {"gate": "items", "task": "plus_one", "stage": 1, "status": "more_data", "worst": 0.0}, {"gate": "accuracy_drop", "task": "plus_one", "stage": 1, "status": "more_data", "worst": null}, {"gate": "unparseable_rate", "task": "plus_one", "stage": 1, "status": "more_data", "worst": 0.7934506856227626}, {"gate": "swap_rate", "task": "plus_one", "stage": 2, "status": "more_data", "worst": 0.7934506856227626}, {"gate": "cost_saving", "task": null, "stage": 1, "status": "unknown", "worst": null}, {"gate": "p95_latency", "task": null, "stage": 2, "status": "more_data", "worst": 0.30000000000000004}, {"gate": "operations", "task": null, "stage": 2, "status": "fail", "worst": null}, {"gate": "all_tasks_mixed", "task": null, "stage": 3, "status": "pass", "worst": null}]}]}');
CREATE INDEX items_by_call ON items(run_id, call_id);
CREATE INDEX calls_by_cache_key ON calls(cache_key) WHERE cache_key IS NOT NULL AND cached = 0;
CREATE INDEX baselines_by_pilot ON baselines(pilot, id);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('baselines',1);
COMMIT;
