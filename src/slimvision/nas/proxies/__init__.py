"""Zero-cost proxies as evaluators. Importing this module registers every proxy in `EVALUATORS` (and the cell space)."""

from slimvision.nas.proxies.evaluator import ProxyEvaluator, register_proxy_evaluators
from slimvision.nas.proxies.measures import PROXIES, compute_proxy

register_proxy_evaluators()

__all__ = ["PROXIES", "ProxyEvaluator", "compute_proxy", "register_proxy_evaluators"]
