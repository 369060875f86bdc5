"""The superposition probe: does a model keep several tasks alive at once, in proportion to their
examples?

Following Xiong et al. (2024), a prompt holds `input -> output` examples drawn from several tasks in
given shares `pi` and ends with one query every task can answer; the probe reads the model's
probability of each task's answer, `P(y_k | prompt)`, the product of the next-token probabilities of
`y_k`'s tokens. Reading it is a backend capability (`Backend.score_continuations`): local models by
teacher forcing (exact), API models from the server's logprobs (echo, exact; or the top-logprob beam,
an estimate).

- `prompts`: the prompts of every mixture, deterministic for the probe's seed;
- `run`: a run's probe, asking each model's backend and storing each prompt's rows as it finishes;
- `figures`: the figures per model and mixture (calibration points, KL both ways, the top-K check),
  from a run's stored rows, which the report's probe section (roi/report/probe_section.py) draws.
"""
