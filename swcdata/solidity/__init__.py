"""Solidity inside instruction text: the one lexer (`lexer`), code spans in prose (`extract`), tree-sitter
parsing (`parse`) and what code declares and does (`declarations`)."""
