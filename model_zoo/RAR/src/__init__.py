"""RAR's folder: the model, and the `rar_seq` dataset recipe its datasets use.

What a model folder exports here is all the runner looks for: BaseModel subclasses (by the
expid's `model:` name) and `RECIPES` (dataset recipes by name, for this folder's private dataset
ids). Nothing outside this folder imports it.
"""

from .RAR import RAR, SimHash
from .rar_seq import make as make_rar_seq

RECIPES = {"rar_seq": make_rar_seq}

__all__ = ["RAR", "SimHash", "RECIPES"]
