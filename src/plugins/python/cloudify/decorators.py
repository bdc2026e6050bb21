"""`@operation`: a marker, as in Cloudify; scripts may decorate their functions with it."""


def operation(func=None, resumable=False, **kwargs):
    if func:
        func.resumable = resumable
        return func
    return lambda fn: operation(fn, resumable=resumable, **kwargs)
