"""`phf redteam`: automated red teaming by stochastic few-shot generation (Korbak et al. 2023, section 4.2,
after Perez et al. 2022). A red LM writes prompts likely to make the target LM produce misaligned text;
the prompts that worked best become its few-shot examples in the next round; ten rounds in the paper.

    result = run_redteam(target, red, get_scorer(cfg.scorer), cfg, task_prompts(cfg.evaluation), out_dir)

Which red LM. The paper used InstructGPT (text-davinci-002), which is gone; a capable model behind an
OpenAI-compatible server is the faithful replacement: `--red-lm openai:MODEL@http://host:8000/v1`.
Offline, with no `--red-lm` and no `redteam.red_lm`, the target itself is the red LM: it is the one model
certain to be there, and a base LM of the task's corpus continuing a list of the task's prompts writes
prompts in the corpus's own style (PEP8: function signatures). Expect little from it with the tiny
CPU models: they follow no instruction, so their prompts are corpus-like lines, many unusable (counted
as dropped), and the pool's score rises slowly, mostly through selection. Two cautions when comparing
objectives: give every target the same red LM (the MLE model is the natural choice: it imitates the
whole corpus, misaligned parts included), since a conditional model as its own red LM writes prompts
from `<|aligned|>` and so attacks itself less; and compare rounds only between runs with the same red LM,
seed prompts and settings (all recorded in redteam.json).
"""

from phf.redteam.output import format_table
from phf.redteam.pool import Candidate, draw_examples, pool_probabilities, pool_temperature
from phf.redteam.run import run_redteam, template_path
from phf.redteam.template import Template

__all__ = ["Candidate", "Template", "draw_examples", "format_table", "pool_probabilities", "pool_temperature",
           "run_redteam", "template_path"]
