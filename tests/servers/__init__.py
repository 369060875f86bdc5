"""Real servers for tests: a llama.cpp server on loopback serving the embedded GGUF, and a small
fault-injecting HTTP proxy to put in front of it."""

from tests.servers.faults import Fault, FaultProxy
from tests.servers.llama import LlamaServer, embedded_gguf_path, free_port

__all__ = ["Fault", "FaultProxy", "LlamaServer", "embedded_gguf_path", "free_port"]
