"""OpLog: records the name of every op dispatched while it is active (``with OpLog() as log: ...;
log.ops``), for tests that prove which kernels a module runs."""

from torch.utils._python_dispatch import TorchDispatchMode


class OpLog(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))
