"""The detectors: each one typology, with documented parameters and evidence."""

from __future__ import annotations

from provenance.analysis.detectors.base import Detector
from provenance.analysis.detectors.bursts import BurstDetector
from provenance.analysis.detectors.cycles import CycleDetector
from provenance.analysis.detectors.fans import FanDetector, GatherScatterDetector
from provenance.analysis.detectors.propagation import RiskPropagation
from provenance.analysis.detectors.rings import SharedAttributeRingDetector
from provenance.analysis.detectors.scatter_gather import ScatterGatherDetector
from provenance.analysis.detectors.stacked import StackedChainDetector

__all__ = [
    "BurstDetector",
    "CycleDetector",
    "Detector",
    "FanDetector",
    "GatherScatterDetector",
    "RiskPropagation",
    "ScatterGatherDetector",
    "SharedAttributeRingDetector",
    "StackedChainDetector",
]
