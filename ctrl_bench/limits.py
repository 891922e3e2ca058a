"""The largest numbers the tensors of a run can hold: every real-valued setting ends up in a float32
tensor, every integer in an int64 one. Settings are checked against these before anything runs."""

import torch

FLOAT32_MAX = float(torch.finfo(torch.float32).max)
INT64_MAX = torch.iinfo(torch.int64).max
