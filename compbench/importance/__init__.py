"""Importance scoring: which heads and neurons matter, and by how much.

Gates of ones on every unit's output (:mod:`.gates`); weight magnitude (:mod:`.magnitude`); gradient
sensitivity and Fisher information through the gates (:mod:`.gradient`); OPTIN's trajectory
(:mod:`.trajectory`); Kwon et al.'s mask rearrangement and tuning (:mod:`.mask_tuning`); and the
ranking that turns scores and an amount into the units to remove (:mod:`.ranking`)."""
