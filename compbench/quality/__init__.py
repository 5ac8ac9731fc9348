"""Quality: teacher fidelity and task probes."""
