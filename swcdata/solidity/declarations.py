"""What a piece of Solidity code declares, read from its tree-sitter tree.

`facts(code)` parses the code once (in the wrapping that parses best, as :func:`swcdata.solidity.treesitter.parse`
does) and returns:

* every declaration: its name, its kind (``state``, ``local``, ``param``, ``return``, ``event_param``,
  ``struct_member``, ``function``, ``modifier``, ``event``, ``error``, ``contract``, ``struct``, ``enum``)
  and, for variables, its declared type as written (``bool``, ``address payable``, ``uint256``,
  ``mapping(address => uint)``, ``uint[]``, ``IERC20``) and whether it is ``constant``/``immutable``;
* every callable (function, constructor, modifier, fallback, receive) with what can honestly be said
  about it from the tree alone: its visibility, mutability and modifiers, and whether its body sends
  ether, calls out, writes, emits, checks, loops or self-destructs. The augment step writes its
  comments from these facts.

Offsets are character offsets into the code passed in. Used by augmentation
(:mod:`swcdata.steps.augment.rename` renames by type, :mod:`swcdata.steps.augment.comments` writes comments)
and :mod:`swcdata.steps.augment.quality`. tree-sitter is C: callers that must survive a crash in it run this
in an isolated child (see :mod:`swcdata.core.isolate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from swcdata.solidity import treesitter

__all__ = ["Callable_", "Decl", "Facts", "facts", "type_kind"]

_VAR_PARENTS = {
    "state_variable_declaration": "state",
    "variable_declaration": "local",
    "parameter": "param",
    "event_parameter": "event_param",
    "error_parameter": "param",
    "struct_member": "struct_member",
    "constant_variable_declaration": "state",
}
_NAMED_PARENTS = {
    "function_definition": "function",
    "modifier_definition": "modifier",
    "event_definition": "event",
    "error_declaration": "error",
    "contract_declaration": "contract",
    "interface_declaration": "contract",
    "library_declaration": "contract",
    "struct_declaration": "struct",
    "enum_declaration": "enum",
}
_CALLABLES = frozenset(["function_definition", "constructor_definition", "modifier_definition",
                        "fallback_receive_definition"])
_SEND_MEMBERS = frozenset(["transfer", "send"])
_LOW_LEVEL = frozenset(["call", "delegatecall", "staticcall", "callcode"])
_CHECKS = frozenset(["require", "assert", "revert"])
_GLOBALS = frozenset(["msg", "block", "tx", "abi", "this", "super", "now", "type"])


@dataclass(frozen=True, slots=True)
class Decl:
    name: str
    kind: str
    type: str | None = None  # variables only: the declared type, blanks normalised
    constant: bool = False


@dataclass(slots=True)
class Callable_:
    """A function, constructor, modifier, fallback or receive function, and what its tree shows."""

    kind: str  # "function" | "constructor" | "modifier" | "fallback" | "receive"
    name: str | None
    start: int  # character offset of its first character (its keyword)
    visibility: str | None = None
    mutability: str | None = None  # "view" | "pure" | "payable" | "constant" | None
    modifiers: list[str] = field(default_factory=list)
    returns_bool: bool = False
    sends_ether: bool = False  # .transfer / .send / .call{value: ...} / .call.value(...)
    calls_out: bool = False  # a call on another contract (member call or low-level call)
    writes: bool = False  # an assignment, ++/--, delete, or push/pop on a name the body did not declare
    emits: list[str] = field(default_factory=list)
    checks: bool = False  # require / assert / revert / throw
    checks_sender: bool = False  # a check that reads msg.sender or tx.origin
    loops: bool = False
    destroys: bool = False  # selfdestruct / suicide
    has_body: bool = True


@dataclass(slots=True)
class Facts:
    decls: list[Decl]
    callables: list[Callable_]
    ok: bool  # the code parsed without errors (as treesitter.parse says)
    idents: list[treesitter.Identifier] = field(default_factory=list)  # as treesitter.identifier_nodes gives them


def type_kind(type_text: str | None) -> str | None:
    """The broad kind of a declared type: bool, address, uint, int, string, bytes, mapping, array,
    or 'user' (a contract, interface, struct or enum type); None when unknown."""
    if not type_text:
        return None
    t = type_text.strip()
    if t.startswith("mapping"):
        return "mapping"
    if t.endswith("]"):
        return "array"
    base = t.split()[0]
    if base == "bool":
        return "bool"
    if base == "address":
        return "address"
    if base.startswith("uint"):
        return "uint"
    if base.startswith("int"):
        return "int"
    if base == "string":
        return "string"
    if base.startswith("bytes") or base == "byte":
        return "bytes"
    if base[:1].isalpha() or base[:1] == "_":
        return "user"
    return None  # pragma: no cover


def _text(node: Any, body: bytes, offset: int) -> str:
    return body[node.start_byte - offset : node.end_byte - offset].decode("utf-8", "replace")


def facts(code: str, *, max_chars: int = treesitter.MAX_PARSE_CHARS, bodies: bool = True) -> Facts:
    """The declarations and callables of ``code`` (see the module). ``bodies=False`` leaves the callables'
    body facts (sends_ether ... destroys) unset, which saves a walk of every body. Raises
    treesitter.CodeTooLarge for a span longer than ``max_chars`` (it is not parsed)."""
    res, tree, offset = treesitter._parse_best(code, max_chars)
    body = code.encode("utf-8")
    nbytes = len(body)
    ascii_only = nbytes == len(code)

    def char_at(byte: int) -> int:
        b = byte - offset
        return b if ascii_only else len(body[:b].decode("utf-8", "replace"))

    def inside(node: Any) -> bool:
        return node.start_byte - offset >= 0 and node.end_byte - offset <= nbytes

    decls: list[Decl] = []
    callables: list[Callable_] = []
    idents: list[treesitter.Identifier] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        t = node.type
        if t == "identifier":  # (treesitter.identifier_nodes, from the same tree)
            if inside(node):
                cs, ce = char_at(node.start_byte), char_at(node.end_byte)
                idents.append(treesitter.Identifier(code[cs:ce], cs, ce, node.start_byte - offset,
                                                  node.end_byte - offset,
                                                  node.parent.type if node.parent is not None else ""))
            continue
        if t in _VAR_PARENTS and inside(node):
            name = node.child_by_field_name("name")
            typ = node.child_by_field_name("type")
            if name is not None and name.type == "identifier":
                kind = _VAR_PARENTS[t]
                if t == "parameter" and node.parent is not None and node.parent.type == "return_type_definition":
                    kind = "return"
                const = t == "constant_variable_declaration" or any(
                    c.type in ("constant", "immutable") for c in node.children)
                decls.append(Decl(_text(name, body, offset), kind,
                                  " ".join(_text(typ, body, offset).split()) if typ is not None else None, const))
        elif t in _NAMED_PARENTS and inside(node):
            name = node.child_by_field_name("name")
            if name is not None and name.type == "identifier":
                decls.append(Decl(_text(name, body, offset), _NAMED_PARENTS[t]))
        if t in _CALLABLES and node.start_byte - offset >= 0 and node.end_byte - offset <= nbytes:
            callables.append(_callable(node, body, offset, char_at, bodies))
        stack.extend(reversed(node.children))
    callables.sort(key=lambda c: c.start)
    return Facts(decls, callables, res.ok, idents)


def _callable(node: Any, body: bytes, offset: int, char_at: Any, bodies: bool) -> Callable_:
    t = node.type
    first = _text(node.children[0], body, offset) if node.children else ""
    if t == "constructor_definition":
        kind = "constructor"
    elif t == "modifier_definition":
        kind = "modifier"
    elif t == "fallback_receive_definition":
        kind = "receive" if first == "receive" else "fallback"
    else:
        kind = "function"
    name_node = node.child_by_field_name("name")
    c = Callable_(kind, _text(name_node, body, offset) if name_node is not None else None, char_at(node.start_byte))
    for ch in node.children:
        if ch.type == "visibility":
            c.visibility = _text(ch, body, offset)
        elif ch.type == "state_mutability":
            c.mutability = _text(ch, body, offset)
        elif ch.type in ("public", "private", "internal", "external"):
            c.visibility = ch.type
        elif ch.type in ("payable", "view", "pure"):
            c.mutability = ch.type
        elif ch.type == "modifier_invocation":
            ident = next((x for x in ch.children if x.type == "identifier"), None)
            if ident is not None:
                c.modifiers.append(_text(ident, body, offset))
        elif ch.type == "return_type_definition":
            params = [p for p in ch.children if p.type == "parameter"]
            if len(params) == 1:
                typ = params[0].child_by_field_name("type")
                c.returns_bool = typ is not None and _text(typ, body, offset).strip() == "bool"
    fbody = node.child_by_field_name("body")
    if fbody is None:
        c.has_body = False
    elif bodies:
        params: dict[str, str] = {}
        for ch in node.children:
            if ch.type == "parameter":
                name, typ = ch.child_by_field_name("name"), ch.child_by_field_name("type")
                if name is not None:
                    params[_text(name, body, offset)] = _text(typ, body, offset) if typ is not None else ""
        _scan_body(fbody, body, offset, c, params)
    return c


def _root_name(node: Any, body: bytes, offset: int) -> str | None:
    """The identifier an lvalue starts from (`a` of `a.b[c]`), or None."""
    while node is not None:
        if node.type == "identifier":
            return _text(node, body, offset)
        if node.type in ("expression", "member_expression", "array_access", "parenthesized_expression"):
            node = node.children[0] if node.children else None
            continue
        return None
    return None


def _scan_body(fbody: Any, body: bytes, offset: int, c: Callable_, params: dict[str, str]) -> None:
    local = dict(params)  # name -> declared type of the parameters and local variables
    stack = [fbody]
    while stack:
        n = stack.pop()
        t = n.type
        if t == "variable_declaration":
            name, typ = n.child_by_field_name("name"), n.child_by_field_name("type")
            if name is not None:
                local[_text(name, body, offset)] = _text(typ, body, offset) if typ is not None else ""
        elif t in ("for_statement", "while_statement", "do_while_statement"):
            c.loops = True
        elif t == "emit_statement":
            name = n.child_by_field_name("name")
            if name is not None:
                c.emits.append(_text(name, body, offset).split("(")[0].strip())
        elif t == "revert_statement" or (t == "identifier" and _text(n, body, offset) == "throw"):
            c.checks = True
        elif t in ("assignment_expression", "augmented_assignment_expression", "update_expression"):
            target = n.child_by_field_name("left") or (n.children[0] if n.children else None)
            if t == "update_expression":
                target = next((x for x in n.children if x.is_named), None)
            root = _root_name(target, body, offset)
            if root is not None and root not in local and root not in _GLOBALS:
                c.writes = True
        elif t == "unary_expression" and n.children and _text(n.children[0], body, offset) == "delete":
            c.writes = True
        elif t == "call_expression":
            _scan_call(n, body, offset, c, local)
        stack.extend(n.children)
    if c.checks and not c.checks_sender:
        text = _text(fbody, body, offset)
        c.checks_sender = "msg.sender" in text or "tx.origin" in text


def _scan_call(n: Any, body: bytes, offset: int, c: Callable_, local: dict[str, str]) -> None:
    fn = n.child_by_field_name("function") or (n.children[0] if n.children else None)
    if fn is None:
        return
    callee = fn
    while callee.type == "expression" and callee.children:
        callee = callee.children[0]
    value_opt = False
    if callee.type == "struct_expression":  # x.call{value: v}(...)
        value_opt = "value" in _text(callee, body, offset)
        inner = callee.children[0] if callee.children else None
        while inner is not None and inner.type == "expression" and inner.children:
            inner = inner.children[0]
        callee = inner if inner is not None else callee
    if callee.type == "identifier":
        name = _text(callee, body, offset)
        if name in _CHECKS:
            c.checks = True
            c.checks_sender = c.checks_sender or "msg.sender" in _text(n, body, offset) \
                or "tx.origin" in _text(n, body, offset)
        elif name in ("selfdestruct", "suicide"):
            c.destroys = True
            c.sends_ether = True
        return
    if callee.type != "member_expression":
        return
    prop = callee.child_by_field_name("property")
    member = _text(prop, body, offset) if prop is not None else _text(callee, body, offset).rsplit(".", 1)[-1]
    obj = callee.children[0] if callee.children else None
    obj_text = _text(obj, body, offset) if obj is not None else ""
    if member in _SEND_MEMBERS and obj_text not in ("super",):
        # `token.transfer(to, amount)` moves tokens (two arguments); `to.transfer(amount)` moves ether
        args = [x for x in n.children if x.type == "call_argument"]
        if len(args) == 1:
            c.sends_ether = True
        else:
            c.calls_out = True  # (a token transfer: the other contract's state)
        return
    if member == "value" and obj_text.endswith((".call", ".send")):  # x.call.value(v)(...)
        c.sends_ether = True
        c.calls_out = True
        return
    if member in _LOW_LEVEL:
        c.calls_out = True
        c.sends_ether = c.sends_ether or value_opt
        return
    if member in ("push", "pop"):
        root = _root_name(obj, body, offset)
        if root is not None and root not in local:
            c.writes = True
        return
    root = _root_name(obj, body, offset)
    if root in _GLOBALS or (root in local and type_kind(local[root]) not in ("address", "user", None)):
        return  # (a library function on a value: `s.nameFilter()` on a string, `a.add(b)` on a number)
    # a member call on something else: another contract (a library call such as `a.add(b)` on a number
    # looks the same; it is not counted when the receiver was declared in the body)
    if member not in ("add", "sub", "mul", "div", "mod", "length", "encode", "encodePacked", "decode"):
        c.calls_out = True
