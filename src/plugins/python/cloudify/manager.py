"""Cloudify's manager client. windlass has no manager: using it is an error that says so."""
from cloudify.exceptions import NonRecoverableError

_NO_MANAGER = (
    '{0}: windlass has no Cloudify manager and no REST API; read what the script needs '
    'through ctx (ctx.instance, ctx.node, ctx.source/ctx.target) or operation inputs')


def get_rest_client(*args, **kwargs):
    raise NonRecoverableError(_NO_MANAGER.format('cloudify.manager.get_rest_client'))


def get_node_instance(*args, **kwargs):
    raise NonRecoverableError(_NO_MANAGER.format('cloudify.manager.get_node_instance'))


def update_node_instance(*args, **kwargs):
    raise NonRecoverableError(_NO_MANAGER.format('cloudify.manager.update_node_instance'))
