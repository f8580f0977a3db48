"""RGSD itself: the teacher prompt, the rollout, teacher/student alignment, the divergence losses, the signal
measures and the self-internalization-gap probe. Everything that trains or evaluates builds on this package;
it imports nothing of theirs."""
