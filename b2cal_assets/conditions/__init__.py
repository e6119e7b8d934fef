"""The conditions-database step: a staging global tag built from a processing's signed-off payloads."""
