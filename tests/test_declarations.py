"""declarations: what tree-sitter says a piece of code declares, and what its callables do."""

from __future__ import annotations

from swcdata.solidity.declarations import facts, type_kind

CODE = """contract Vault {
    bool public locked;
    address payable owner;
    uint256 constant MAX_X = 10;
    mapping(address => mapping(address => uint)) allowed;
    uint[] list;
    event Paid(address indexed to, uint amount);
    modifier onlyOwner2() { require(msg.sender == owner); _; }
    function pay(uint _v, bool flag) public onlyOwner2 returns (bool ok) {
        (bool s, ) = owner.call{value: _v}("");
        emit Paid(owner, _v);
        list.push(_v);
    }
    function take(string memory name) public { msg.sender.transfer(1); bytes32 h = keccak256(bytes(name)); }
    function peek() public view returns (uint) { return list.length; }
    function tokens(address t) internal { IERC20(t).transfer(owner, 1); }
    function loop() external { for (uint i = 0; i < list.length; i++) { delete list[i]; } selfdestruct(owner); }
}"""


def test_declarations_have_their_kind_and_type() -> None:
    f = facts(CODE)
    assert f.ok
    d = {x.name: x for x in f.decls}
    assert (d["Vault"].kind, d["Paid"].kind, d["onlyOwner2"].kind, d["pay"].kind) == ("contract", "event", "modifier",
                                                                                       "function")
    assert (d["locked"].kind, d["locked"].type) == ("state", "bool")
    assert d["owner"].type == "address payable" and type_kind(d["owner"].type) == "address"
    assert d["MAX_X"].constant and type_kind(d["MAX_X"].type) == "uint"
    assert type_kind(d["allowed"].type) == "mapping" and type_kind(d["list"].type) == "array"
    assert (d["_v"].kind, d["flag"].type, d["ok"].kind, d["s"].kind) == ("param", "bool", "return", "local")
    assert (d["to"].kind, d["name"].type) == ("event_param", "string")


def test_callables_say_what_their_bodies_do() -> None:
    cs = {c.name or c.kind: c for c in facts(CODE).callables}
    assert cs["onlyOwner2"].kind == "modifier" and cs["onlyOwner2"].checks_sender
    pay = cs["pay"]
    assert (pay.visibility, pay.modifiers, pay.returns_bool) == ("public", ["onlyOwner2"], True)
    assert pay.sends_ether and pay.calls_out and pay.writes and pay.emits == ["Paid"]
    take = cs["take"]
    assert take.sends_ether and not take.calls_out and not take.writes  # (`bytes(name)`, a local: no state)
    assert cs["peek"].mutability == "view" and not cs["peek"].writes
    tokens = cs["tokens"]
    assert tokens.visibility == "internal" and tokens.calls_out and not tokens.sends_ether  # token transfer
    loop = cs["loop"]
    assert loop.loops and loop.writes and loop.destroys
    assert [c.start for c in facts(CODE).callables] == sorted(CODE.index(x) for x in (
        "modifier onlyOwner2", "function pay", "function take", "function peek", "function tokens", "function loop"))


def test_snippets_parse_in_their_wrapping_and_old_syntax_is_read() -> None:
    f = facts("function f() { if (!x) throw; y = 1; }")
    (c,) = f.callables
    assert c.checks and c.writes and c.start == 0
    assert [d.name for d in f.decls] == ["f"] and not [i for i in f.idents if i.name.startswith("__")]
    assert facts("uint a = b + 1;").decls[0].type == "uint"
