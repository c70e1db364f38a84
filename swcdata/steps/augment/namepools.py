"""The names that `augment`'s renaming draws from, one pool per type and role.

A renamed identifier gets a name of its own kind: a ``bool`` a flag (``settled``), an ``address`` a party
(``beneficiary``), a ``uint`` an amount, a time, a rate or a count according to what its old name and its
use say (``deadline`` for ``endTime``, never for ``amount``), a constant an UPPER_CASE name of the same
type, a mapping or an array a collection of what it holds, a function a verb phrase (a getter for a view
function, a question for one that returns ``bool``), a modifier a guard, an event a past-tense phrase, a
contract a contract noun. :func:`allowed_roles` says which pools a declared type may take names from:
the augment step's quality report and its tests check every rename against it.
"""

from __future__ import annotations

import re

__all__ = ["POOLS", "allowed_roles", "bool_role", "num_role", "roles_of", "split_words", "time_role"]

# fmt: off
POOLS: dict[str, tuple[str, ...]] = {
    # flags by what true means: something is on (open, running), something is off (stopped, frozen), or
    # something has happened (a call succeeded, a round was settled); `stopped` never becomes `isLive`
    "bool_on": ("isActive", "isOpen", "enabled", "isLive", "started", "isRunning", "isEnabled", "acceptingBids"),
    "bool_off": ("isFrozen", "halted", "isLocked", "closed", "disabled", "isStopped", "suspended", "isHalted"),
    "bool_done": ("settled", "approved", "finalized", "executed", "claimed", "completed", "isVerified", "confirmed",
                  "accepted", "delivered", "processed", "succeeded"),
    "addr": ("recipient", "beneficiary", "operator", "treasuryWallet", "feeRecipient", "winner", "bidder", "seller",
             "buyer", "payee", "admin", "manager", "receiver", "custodian", "depositor", "claimant", "payer",
             "investor"),
    "amount": ("payout", "stake", "credit", "feeAmount", "shareAmount", "bidAmount", "owed", "collateral", "debt",
               "principal", "reward", "netAmount", "grossAmount", "amountDue", "refundAmount", "prizeAmount",
               "tokensOwed", "quantity", "depositAmount", "withdrawAmount"),
    # times by what they mark: a start, an end, a length of time, or a moment
    "time_start": ("startTime", "openingTime", "vestingStart", "launchTime", "saleStart", "beginAt"),
    "time_end": ("deadline", "endTime", "closingTime", "expiry", "unlockTime", "releaseTime", "lockedUntil",
                 "cooldownEnd"),
    "time_span": ("lockPeriod", "duration", "gracePeriod", "vestingDuration", "delay", "interval", "window",
                  "cooldownLength"),
    "time_at": ("lastUpdate", "checkpoint", "lastAction", "recordedAt", "snapshotTime", "lastClaimAt"),
    "rate": ("price", "feeRate", "unitPrice", "exchangeRate", "bonusRate", "ticketPrice", "multiplier",
             "rewardRate", "feePercent", "conversionRate"),
    "index": ("roundId", "orderId", "ticketId", "slotIndex", "positionId", "entryIndex", "itemId", "recordId"),
    "count": ("counter", "entryCount", "itemCount", "batchSize", "sequence", "epoch", "stage", "totalEntries"),
    "string": ("label", "description", "title", "memo", "tag", "note"),
    "bytes": ("digest", "commitment", "secretHash", "payload", "hashValue", "signatureData"),
    "map_amount": ("deposits", "holdings", "creditOf", "stakeOf", "depositOf", "rewardOf", "owedTo", "sharesOf",
                   "escrowOf", "pendingOf", "contributions", "refunds"),
    "map_flag": ("isApproved", "whitelisted", "registered", "hasClaimed", "isMember", "frozenAccount", "isBlocked",
                 "hasVoted"),
    "map_addr": ("referrerOf", "delegateOf", "ownerOfSlot", "payoutAddress", "sponsorOf", "custodianOf"),
    "map_record": ("records", "positions", "accounts", "entries", "profiles", "orderBook", "stakes", "claims"),
    "list_addr": ("participants", "payees", "members", "bidders", "investors", "holderList", "recipients"),
    "list_amount": ("amounts", "payouts", "shares", "prices", "allocations", "weights"),
    "list_record": ("orders", "tickets", "rounds", "proposals", "requests", "items"),
    "record": ("entry", "record", "details", "position", "snapshot", "info", "item", "slotData"),
    "const_amount": ("MAX_PAYOUT", "MIN_DEPOSIT", "BASE_UNIT", "PRECISION", "MIN_STAKE", "MAX_BID",
                     "FEE_DENOMINATOR", "MAX_PARTICIPANTS", "SUPPLY_CAP", "HARD_CAP", "SOFT_CAP", "MIN_CONTRIBUTION"),
    "const_time": ("LOCK_PERIOD", "ROUND_LENGTH", "GRACE_PERIOD", "VESTING_PERIOD", "COOLDOWN", "SALE_DURATION",
                   "CLAIM_WINDOW", "VOTING_PERIOD"),
    "const_rate": ("FEE_RATE", "REWARD_RATE", "DEFAULT_RATE", "TICKET_PRICE", "BONUS_PERCENT", "EXCHANGE_RATE",
                   "PRICE_PER_TOKEN", "FEE_PERCENT"),
    "const_addr": ("TREASURY_ADDRESS", "FEE_WALLET", "DEV_WALLET", "VAULT_ADDRESS", "RESERVE_WALLET",
                   "ORACLE_ADDRESS"),
    "func_action": ("processPayment", "settleAccount", "executePayout", "claimReward", "releaseFunds",
                    "distributeShares", "updateLedger", "handleDeposit", "finalizeRound", "collectFees",
                    "redeemShares", "payoutWinner", "refundBidder", "sweepBalance", "allocateTokens", "registerMember",
                    "closePosition", "rebalancePool", "withdrawStake", "depositCollateral", "settleTrade",
                    "creditAccount", "debitAccount", "startAuction", "endAuction", "placeBid", "buyTickets",
                    "drawWinner", "lockFunds", "unlockFunds", "harvestYield", "liquidatePosition", "repayLoan",
                    "borrowAssets", "forwardPayment", "splitRevenue", "vestTokens", "releaseVested", "submitOrder",
                    "cancelOrder"),
    "func_view": ("getPayout", "currentRate", "pendingReward", "quotePrice", "computeFee", "previewRedeem",
                  "getPosition", "viewStake", "totalOwed", "calculateShare", "getRoundInfo", "estimateReturn"),
    "func_check": ("isEligible", "canClaim", "hasExpired", "isSettled", "canWithdraw", "isWhitelisted",
                   "hasMatured", "isOpenForBids"),
    "modifier_only": ("onlyAdmin", "onlyOperator", "onlyManager", "onlyGovernor", "onlyKeeper", "onlyTreasurer",
                      "onlyController", "onlyCurator", "onlyGuardian", "onlyMinter"),
    "modifier_state": ("whenActive", "whenOpen", "whenLive", "whenUnlocked", "afterDeadline", "beforeDeadline",
                       "whenFunded", "inPhase"),
    "event": ("FundsReleased", "PaymentMade", "Deposited", "Withdrawn", "RewardClaimed", "RoundClosed", "BidPlaced",
              "WinnerPaid", "SharesMinted", "FeesCollected", "PositionClosed", "OrderFilled", "StakeUpdated",
              "RefundIssued", "PriceUpdated"),
    "contract": ("Vault", "Treasury", "Escrow", "Crowdsale", "Lottery", "Auction", "Registry", "StakingPool",
                 "Marketplace", "Exchange", "Fundraiser", "Wallet", "Bank", "Raffle", "Distributor", "Splitter",
                 "TokenSale", "Faucet"),
    "struct": ("Position", "Order", "Bid", "Ticket", "Member", "Round", "Stake", "Claim", "Deposit", "Proposal"),
    "enum": ("Phase", "Stage", "Status", "Mode"),
}
# fmt: on

_ROLES_OF: dict[str, set[str]] = {}
for _role, _names in POOLS.items():
    for _n in _names:
        _ROLES_OF.setdefault(_n, set()).add(_role)

_NUMERIC = frozenset(["amount", "time_start", "time_end", "time_span", "time_at", "rate", "count", "index"])
_BOOLS = frozenset(["bool_on", "bool_off", "bool_done"])
_CONST_NUMERIC = frozenset(["const_amount", "const_time", "const_rate"])


def allowed_roles(type_kind: str | None, constant: bool = False, value_kind: str | None = None) -> frozenset[str]:
    """The pools a variable of this declared type may take a new name from (empty: it is not renamed).
    ``type_kind`` as :func:`swcdata.solidity.declarations.type_kind` gives it; ``value_kind`` is the kind of a
    mapping's value or an array's element."""
    if constant:
        if type_kind in ("uint", "int"):
            return _CONST_NUMERIC
        if type_kind == "address":
            return frozenset(["const_addr"])
        return frozenset()
    if type_kind == "bool":
        return _BOOLS
    if type_kind == "address":
        return frozenset(["addr"])
    if type_kind in ("uint", "int"):
        return _NUMERIC
    if type_kind == "string":
        return frozenset(["string"])
    if type_kind == "bytes":
        return frozenset(["bytes"])
    if type_kind == "mapping":
        return frozenset([{"bool": "map_flag", "address": "map_addr", "uint": "map_amount", "int": "map_amount"}
                          .get(value_kind or "", "map_record")])
    if type_kind == "array":
        return frozenset([{"address": "list_addr", "uint": "list_amount", "int": "list_amount"}
                          .get(value_kind or "", "list_record")])
    return frozenset()


_SPLIT_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def split_words(name: str) -> list[str]:
    """The words of an identifier, lower case: ``setExternalDependencies`` -> set, external, dependencies;
    ``MAX_CAP`` -> max, cap; ``_tokenURI`` -> token, uri."""
    return [w.lower() for w in _SPLIT_RE.findall(name)]


_START_WORDS = frozenset(["start", "starts", "started", "begin", "begins", "opening", "open", "opens", "launch",
                          "created", "since", "from"])
_END_WORDS = frozenset(["end", "ends", "ended", "deadline", "expiry", "expires", "expiration", "close", "closing",
                        "closes", "until", "unlock", "release", "finish", "finished", "stop", "due", "cliff"])
_SPAN_WORDS = frozenset(["duration", "period", "delay", "interval", "window", "cooldown", "timeout", "length", "day",
                         "days", "week", "weeks", "hour", "hours", "minute", "minutes", "second", "seconds", "year",
                         "years", "month", "months", "lock", "vesting"])
_TIME_WORDS = frozenset(["time", "timestamp", "date", "at", "last", "moment", "when", "epoch"]) | _START_WORDS \
    | _END_WORDS | _SPAN_WORDS
_RATE_WORDS = frozenset(["rate", "price", "percent", "percentage", "ratio", "multiplier", "factor", "bps", "basis",
                         "bonus", "discount", "coefficient", "apr", "apy", "odds"])
_INDEX_WORDS = frozenset(["id", "ids", "index", "idx", "slot", "position", "pos", "key", "i", "j", "k"])
_COUNT_WORDS = frozenset(["count", "counter", "num", "number", "nonce", "round", "length", "size", "epoch", "level",
                          "stage", "phase", "step", "iteration", "n", "cnt", "len", "version", "block", "height",
                          "generation"])


def time_role(words: list[str]) -> str:
    """A time's pool: a start, an end, a length of time, or a moment (the default)."""
    ws = set(words)
    if ws & _SPAN_WORDS and not ws & {"time", "timestamp", "date", "at"}:
        return "time_span"
    if ws & _START_WORDS:
        return "time_start"
    if ws & _END_WORDS:
        return "time_end"
    return "time_at"


_ON_WORDS = frozenset(["active", "open", "opened", "enabled", "enable", "live", "started", "start", "running", "run",
                       "allowed", "allow", "on", "available", "ready", "accepting", "can", "sale", "selling",
                       "trading", "transferable", "minting", "mintable", "public", "whitelist", "whitelisted"])
_OFF_WORDS = frozenset(["stopped", "stop", "paused", "pause", "halted", "halt", "locked", "lock", "frozen", "freeze",
                        "closed", "close", "disabled", "disable", "ended", "end", "off", "blocked", "block", "killed",
                        "emergency", "suspended", "suspend", "blacklisted", "banned", "restricted"])


def bool_role(name: str) -> str:
    """A flag's pool from its old name: ``bool_off`` (stopped, paused, locked...), ``bool_on`` (active, open,
    enabled...) or ``bool_done`` (something happened: sent, success, finalized; the default)."""
    words = set(split_words(name))
    if words & _OFF_WORDS:
        return "bool_off"
    if words & _ON_WORDS:
        return "bool_on"
    return "bool_done"


def num_role(name: str, used_with_time: bool = False) -> str:
    """The numeric pool of a uint/int name: a time (``time_start``, ``time_end``, ``time_span``,
    ``time_at``), ``rate``, ``index`` (an id), ``count`` or ``amount`` (the default), from the words of its old name;
    ``used_with_time`` (compared with or added to ``now`` or ``block.timestamp``) makes it a time."""
    words = split_words(name)
    if used_with_time or any(w in _TIME_WORDS for w in words):
        return time_role(words)
    if any(w in _RATE_WORDS for w in words):
        return "rate"
    if words and words[-1] in _INDEX_WORDS:
        return "index"
    if words and words[-1] in _COUNT_WORDS:
        return "count"
    return "amount"


def roles_of(name: str) -> set[str]:
    """The pools a name belongs to (after a leading underscore and a numeric suffix are taken off)."""
    core = name.lstrip("_")
    base = core.rstrip("0123456789") or core
    return set(_ROLES_OF.get(base, ()))
