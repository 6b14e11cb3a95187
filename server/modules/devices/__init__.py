"""Registered devices (phones, tablets) bound to one inspector by an Ed25519 key, and their tokens."""
