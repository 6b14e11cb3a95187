"""Staff sign-in, bearer tokens, and resolving each request's principal."""
