"""Model code, written once against the ops interface (see voxtral.backends)."""
