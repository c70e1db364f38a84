"""Solidity inside instruction text: the one lexer (`lexer`), code spans in prose (`spans`), tree-sitter
parsing (`treesitter`) and what code declares and does (`declarations`)."""
