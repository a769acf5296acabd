"""The ground floor: errors, named arrays and their specs, the Runner interface, atomic and safe
file I/O, weights, config overrides. It imports no other edgecap package. Import its modules
directly (`edgecap.core.io`, `edgecap.core.runner`, ...): this file stays empty so that light
modules do not pull in torch."""
