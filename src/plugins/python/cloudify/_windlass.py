"""windlass's side of the package: the ctx socket client and the context objects.

The whole context is read once, when the package is first imported (`operation-context`);
logs go out as they are written; runtime properties are kept in plain dicts and written back
whole (`replace-runtime-properties`) by `save`, which the runner calls when the script ends,
whatever the outcome, and which `ctx.instance.update()` calls at once, as Cloudify does.
"""
import copy
import json
import logging
import os
import shutil
import socket
import tempfile

from cloudify.exceptions import (HttpException, NonRecoverableError, NotInContext,
                                 OperationRetry)

SOCKET_ENV = 'WINDLASS_CTX_SOCKET'
NODE_INSTANCE = 'node-instance'
RELATIONSHIP_INSTANCE = 'relationship-instance'
DEPLOYMENT = 'deployment'


def in_operation():
    return bool(os.environ.get(SOCKET_ENV))


def call(*args):
    """Send one ctx command (a list of words) and return its value."""
    path = os.environ.get(SOCKET_ENV)
    if not path:
        raise NotInContext('not running inside a windlass operation '
                           '({0} is not set)'.format(SOCKET_ENV))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        s.sendall((json.dumps({'args': [str(a) for a in args]}) + '\n').encode('utf-8'))
        data = b''
        while not data.endswith(b'\n'):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    reply = json.loads(data.decode('utf-8'))
    if not reply.get('ok'):
        raise NonRecoverableError('ctx: {0}'.format(reply.get('error', 'failed')))
    return reply.get('value')


_current = None


def current():
    """The operation's context, read from windlass on first use."""
    global _current
    if _current is None:
        _current = CloudifyContext(call('operation-context'))
    return _current


class Outside(object):
    """`ctx` when the package is imported outside an operation."""

    def __getattr__(self, name):
        raise NotInContext('cloudify.ctx is only available in a windlass operation '
                           '({0} is not set)'.format(SOCKET_ENV))


class _LogHandler(logging.Handler):
    def emit(self, record):
        try:
            call('logger', record.levelname.lower(), self.format(record))
        except Exception:
            self.handleError(record)


def _logger():
    logger = logging.getLogger('windlass.ctx')
    if not logger.handlers:
        logger.addHandler(_LogHandler())
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
    return logger


class ImmutableProperties(dict):
    """A node's properties: read-only, as in Cloudify."""

    def _refuse(self, *args, **kwargs):
        raise NonRecoverableError('Cannot override read only properties')

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse


class NodeContext(object):
    def __init__(self, data):
        self._data = data
        self._properties = ImmutableProperties(data.get('properties') or {})

    @property
    def id(self):
        return self._data['id']

    @property
    def name(self):
        return self._data['id']

    @property
    def properties(self):
        return self._properties

    @property
    def type(self):
        return self._data.get('type')

    @property
    def type_hierarchy(self):
        return list(self._data.get('type_hierarchy') or [])


class NodeInstanceContext(object):
    def __init__(self, data, words):
        self._data = data
        self._words = words  # how ctx commands name this instance: ['instance'], ['source', 'instance']…
        self._properties = dict(data.get('runtime_properties') or {})
        self._saved = copy.deepcopy(self._properties)

    @property
    def id(self):
        return self._data['id']

    @property
    def runtime_properties(self):
        return self._properties

    @runtime_properties.setter
    def runtime_properties(self, value):
        self._properties = dict(value)

    @property
    def dirty(self):
        return self._properties != self._saved

    def update(self, on_conflict=None):
        """Store the runtime properties now (they are also stored when the script ends)."""
        if on_conflict is not None:
            self._properties = dict(on_conflict(copy.deepcopy(self._properties),
                                                copy.deepcopy(self._saved)))
        self.save()

    def save(self):
        if self.dirty:
            call('-j', *self._words, 'replace-runtime-properties', json.dumps(self._properties))
            self._saved = copy.deepcopy(self._properties)

    def refresh(self, force=False):
        """Read the runtime properties again from windlass."""
        if self.dirty and not force:
            raise NonRecoverableError('runtime_properties are dirty: refreshing now would '
                                      'destroy local changes')
        self._properties = dict(call(*self._words, 'runtime-properties') or {})
        self._saved = copy.deepcopy(self._properties)

    @property
    def host_ip(self):
        found = self._data.get('host_ip') or {}
        if 'ip' in found:
            return found['ip']
        raise NonRecoverableError(found.get('error', 'host_id missing'))


class RelationshipSubjectContext(object):
    """One end of a relationship operation: `ctx.source` or `ctx.target`."""

    def __init__(self, data, side):
        self.node = NodeContext(data['node'])
        self.instance = NodeInstanceContext(data['instance'], [side, 'instance'])


class OperationContext(object):
    def __init__(self, data):
        self._data = data
        self._operation_retry = None

    @property
    def name(self):
        return self._data.get('name')

    @property
    def retry_number(self):
        return self._data.get('retry_number')

    @property
    def max_retries(self):
        return self._data.get('max_retries')

    def retry(self, message=None, retry_after=None):
        """Ask for the operation to run again once the script has ended."""
        self._operation_retry = OperationRetry(message=message or '', retry_after=retry_after)
        return self._operation_retry


class _Named(object):
    def __init__(self, id):
        self.id = id


class ScriptException(Exception):
    def __init__(self, message=None, retry=False):
        super().__init__(message)
        self.retry = retry


class CloudifyContext(object):
    """What `from cloudify import ctx` gives an operation script."""

    def __init__(self, data):
        self._data = data
        self._inputs = data.get('inputs') or {}
        self._resources = data.get('resources') or os.getcwd()
        self._operation = OperationContext(data.get('operation') or {})
        self._node = self._instance = self._source = self._target = None
        if data.get('source'):
            self._source = RelationshipSubjectContext(data['source'], 'source')
            self._target = RelationshipSubjectContext(data['target'], 'target')
        elif data.get('instance'):
            self._node = NodeContext(data['node'])
            self._instance = NodeInstanceContext(data['instance'], ['instance'])
        self.deployment = _Named(data.get('deployment_id'))
        self.blueprint = _Named(data.get('blueprint_id'))
        self.logger = _logger()
        self._return_value = None

    @property
    def type(self):
        if self._source:
            return RELATIONSHIP_INSTANCE
        if self._instance:
            return NODE_INSTANCE
        return DEPLOYMENT

    def _need(self, kind, what):
        if self.type != kind:
            raise NonRecoverableError('{0} can only be used in a {1} context but used in a {2} '
                                      'context.'.format(what, kind, self.type))

    @property
    def node(self):
        self._need(NODE_INSTANCE, 'ctx.node/ctx.instance')
        return self._node

    @property
    def instance(self):
        self._need(NODE_INSTANCE, 'ctx.node/ctx.instance')
        return self._instance

    @property
    def source(self):
        self._need(RELATIONSHIP_INSTANCE, 'ctx.source/ctx.target')
        return self._source

    @property
    def target(self):
        self._need(RELATIONSHIP_INSTANCE, 'ctx.source/ctx.target')
        return self._target

    @property
    def operation(self):
        return self._operation

    @property
    def execution_id(self):
        return self._data.get('execution_id')

    @property
    def task_type(self):
        return 'operation'

    def _resource(self, resource_path):
        root = os.path.realpath(self._resources)
        path = os.path.realpath(os.path.join(root, resource_path))
        if os.path.commonpath([root, path]) != root or not os.path.isfile(path):
            raise HttpException(resource_path, 404,
                                'no such resource among the blueprint\'s files')
        return path

    def get_resource(self, resource_path):
        """A file of the blueprint's directory, as bytes."""
        with open(self._resource(resource_path), 'rb') as f:
            return f.read()

    def download_resource(self, resource_path, target_path=None):
        """A copy of a blueprint file at `target_path` (else in a new temporary directory);
        returns its path."""
        source = self._resource(resource_path)
        if target_path is None:
            target_path = os.path.join(tempfile.mkdtemp(prefix='windlass-resource-'),
                                       os.path.basename(source))
        shutil.copyfile(source, target_path)
        return target_path

    def returns(self, value):
        """The operation's result (once)."""
        if self._return_value is not None:
            raise RuntimeError('ctx may only abort or return once')
        self._return_value = value

    def abort_operation(self, message=None):
        """Fail the operation without retries once the script has ended."""
        if self._return_value is not None:
            raise RuntimeError('ctx may only abort or return once')
        self._return_value = ScriptException(message)
        return self._return_value

    def retry_operation(self, message=None, retry_after=None):
        """Run the operation again once the script has ended."""
        if self._return_value is not None:
            raise RuntimeError('ctx may only abort or return once')
        self._return_value = ScriptException(message, retry=True)
        self._operation.retry(message=message, retry_after=retry_after)
        return self._return_value

    def _instances(self):
        return [i for i in (self._instance,
                            self._source and self._source.instance,
                            self._target and self._target.instance) if i is not None]

    def save(self):
        """Store every changed runtime property (the script ended, however)."""
        for instance in self._instances():
            instance.save()
