"""swcdata: trustworthy, versioned instruction data about Solidity vulnerabilities (SWC classes)."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
