"""Real servers for tests: a llama.cpp server on loopback serving the embedded GGUF, a small
fault-injecting HTTP proxy to put in front of it, and a hostile server that breaks HTTP on purpose."""

from tests.servers.faults import Fault, FaultProxy
from tests.servers.hostile import Behaviour, HostileServer
from tests.servers.llama import LlamaServer, embedded_gguf_path, free_port

__all__ = ["Behaviour", "Fault", "FaultProxy", "HostileServer", "LlamaServer", "embedded_gguf_path", "free_port"]
