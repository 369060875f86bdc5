"""Real servers for tests: llama.cpp and vLLM on loopback serving the embedded model, a small
fault-injecting HTTP proxy to put in front of either, and a hostile server that breaks HTTP on purpose."""

from tests.servers.faults import Fault, FaultProxy
from tests.servers.hostile import Behaviour, HostileServer
from tests.servers.llama import LlamaServer, embedded_gguf_path
from tests.servers.process import free_port
from tests.servers.vllm import VllmServer, vllm_python

__all__ = [
    "Behaviour",
    "Fault",
    "FaultProxy",
    "HostileServer",
    "LlamaServer",
    "VllmServer",
    "embedded_gguf_path",
    "free_port",
    "vllm_python",
]
