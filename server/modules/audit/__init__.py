"""执法全过程记录: the append-only, tamper-evident audit log (RFC 9162 Merkle tree)."""
