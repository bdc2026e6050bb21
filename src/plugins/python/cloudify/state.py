"""`ctx` and `ctx_parameters` (the operation's inputs) of the running operation."""
from cloudify import _windlass
from cloudify.exceptions import NotInContext  # noqa: F401


class CtxParameters(dict):
    """The operation's inputs: a dict whose keys are also attributes."""

    def __getattr__(self, attr):
        if attr in self:
            return self.get(attr)
        raise KeyError(attr)


if _windlass.in_operation():
    ctx = _windlass.current()
    ctx_parameters = CtxParameters(ctx._inputs)
    ctx_parameters['ctx'] = ctx
else:
    ctx = _windlass.Outside()
    ctx_parameters = CtxParameters()
