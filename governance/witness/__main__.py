"""``python -m governance.witness serve ...``: the witness commands without the rest of Warden's
CLI, whose imports (the inference and training libraries) a witness machine does not need."""

from governance.witness.cli import app

app(prog_name="warden witness")
