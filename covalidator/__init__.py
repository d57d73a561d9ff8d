"""covalidator: an Ethereum Distributed Validator Client."""

__version__ = "0.1.0"
