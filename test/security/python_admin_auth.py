"""Run by management-auth.test.ts: the Python admin against a registry and
container-manager with tokens and mutual TLS. argv: registry_port cm_port reader_token ca cert key"""

import sys

from clipper_admin import ClipperConnection, ClipperException, ContainerManager

registry_port, cm_port, reader, ca, cert, key = sys.argv[1:7]
cm = ContainerManager(registry_port=int(registry_port), container_manager_port=int(cm_port))

conn = ClipperConnection(cm, token=reader, tls_ca=ca, tls_cert=cert, tls_key=key)
conn.connect()
print("apps", sorted(conn.get_all_apps()))
print("replicas", len(conn.get_all_model_replicas()))
assert reader not in repr(conn._security)
try:
    conn.unregister_application("app")
    print("delete ok")
except ClipperException as error:
    print("delete refused", error)

anonymous = ClipperConnection(cm, tls_ca=ca, tls_cert=cert, tls_key=key)
anonymous.connect()
try:
    anonymous.get_all_apps()
    print("anonymous ok")
except ClipperException as error:
    print("anonymous refused", error)
