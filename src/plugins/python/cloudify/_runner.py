"""Runs one operation script as Cloudify's script plugin evaluates a `.py` file: compiled and
executed in this interpreter as `__main__`, with `cloudify.ctx` bound to the operation.

usage: python3 -m cloudify._runner SCRIPT

How the script ended goes back to windlass over the ctx socket before this process exits:
runtime properties are saved first (also after a failure), then a NonRecoverableError (or
`ctx.abort_operation`) aborts, an OperationRetry (or `ctx.operation.retry`) retries, a
RecoverableError or any other exception fails recoverably (retried up to max_retries), and
`ctx.returns` gives the result. Exit status: 0 when the operation succeeded, 1 otherwise.
"""
import builtins
import os
import sys
import traceback


def _seconds(retry_after):
    return '-' if retry_after is None else str(float(retry_after))


def _report(exc):
    """Tell windlass how a failed script ended; the message is Cloudify's."""
    from cloudify import _windlass
    from cloudify.exceptions import NonRecoverableError, OperationRetry, RecoverableError
    if isinstance(exc, NonRecoverableError):
        _windlass.call('abort-operation', str(exc))
    elif isinstance(exc, OperationRetry):
        _windlass.call('operation', 'retry-after', _seconds(exc.retry_after), str(exc))
    elif isinstance(exc, RecoverableError):
        _windlass.call('operation', 'recoverable-error', _seconds(exc.retry_after), str(exc))
    else:
        _windlass.call('operation', 'recoverable-error', '-',
                       '{0}: {1}'.format(type(exc).__name__, exc))


def main():
    if len(sys.argv) != 2:
        sys.stderr.write('usage: python3 -m cloudify._runner SCRIPT\n')
        return 2
    script = sys.argv[1]
    sys.argv = [script]
    # As `python3 SCRIPT` would: the script's directory first, so its own modules import.
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    from cloudify import _windlass
    ctx = _windlass.current()
    with open(script, encoding='utf-8', errors='replace') as f:
        source = f.read()
    scope = {'__name__': '__main__', '__file__': script, '__doc__': None,
             '__package__': None, '__builtins__': builtins}
    failure = None
    exit_code = 0
    try:
        exec(compile(source, script, 'exec'), scope)
    except SystemExit as e:
        # sys.exit(N) ends the operation as a shell script's exit status would.
        if isinstance(e.code, int):
            exit_code = e.code
        elif e.code is not None:
            sys.stderr.write('{0}\n'.format(e.code))
            exit_code = 1
    except Exception as e:
        # Cloudify's own exceptions are the script's verdict; anything else is a bug worth its
        # traceback (on standard error, so among the operation's events).
        if not isinstance(e, _windlass.NonRecoverableError) and not hasattr(e, 'retry_after'):
            traceback.print_exc()
        failure = e
    if exit_code != 0:
        # Cloudify's runner saves nothing a script set before sys.exit(N) with N > 0.
        return exit_code
    try:
        ctx.save()
    except Exception as e:
        failure = failure or e
    if failure is None:
        result = ctx._return_value
        if isinstance(result, _windlass.ScriptException) and not result.retry:
            failure = _windlass.NonRecoverableError(str(result))
        elif isinstance(result, RuntimeError):
            failure = _windlass.NonRecoverableError(str(result))
        elif ctx.operation._operation_retry is not None:
            failure = ctx.operation._operation_retry
    if failure is not None:
        _report(failure)
        return 1
    if ctx._return_value is not None:
        import json
        _windlass.call('-j', 'returns', json.dumps(ctx._return_value, default=str))
    return 0


if __name__ == '__main__':
    sys.exit(main())
