// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import "./TcpLightClient.sol";

/// @title TCP's Plasma root (DESIGN §5.7, docs/bridge.md)
/// @notice Users lock ETH here for a TCP address and get it back through an exit game that needs
/// nobody's cooperation. Checkpoints are TCP headers with their finality signature φ, verified
/// against the chain's group key (no operator is trusted; anyone relays). Each checkpoint also
/// proves TCP's bridge status leaf, which names this contract and this chain and says how much
/// of this contract's inbox (deposits and account-exit events, hash-chained) TCP has processed:
/// a checkpoint of a chain that credited anything else is refused.
///
/// Exits: a withdrawal record (burned on TCP) once a checkpoint covers it; or the bridged
/// balance of an account at a checkpoint (the escape hatch), challengeable with a later
/// checkpoint in which the account spent. Exits finalize first in, first out after the
/// challenge period; payouts are pulled. Without a checkpoint for the freeze period (a checkpoint
/// that leaves an inbox entry unprocessed for longer than the challenge period is refused, so a
/// chain that censors the inbox freezes too), or once two different headers of one height are
/// shown signed, the bridge freezes: no checkpoints, no deposits, exits from checkpoints below
/// any equivocation (never below one an exit was already paid from), and deposits no accepted
/// checkpoint credited are reclaimed.
contract PlasmaRoot is TcpLightClient {
    error Frozen();
    error BadParameters();
    error InboxOverdue(uint64 id);
    error NotFrozen();
    error HeightNotAfterLatest(uint64 height, uint64 latest);
    error BadStatusLeaf();
    error WrongRootChain();
    error InboxMismatch();
    error ProofDoesNotVerify();
    error TooDeep();
    error NoSuchCheckpoint(uint64 height);
    error CheckpointNotUsable(uint64 height);
    error BadDeposit();
    error WrongBond(uint256 expected);
    error BadRecord();
    error NotTheOwner();
    error AlreadyExiting();
    error NothingToExit();
    error ExitsNotProcessed(uint32 onTcp, uint32 here);
    error NoSuchExit();
    error ExitNotChallengeable();
    error ChallengeNotCommitted();
    error ChallengeNotLater();
    error DidNotSpend();
    error NotEquivocation();
    error NothingToWithdraw();
    error PayoutFailed();
    error Reentrant();
    error NotReclaimable();

    event CheckpointSubmitted(uint64 indexed height, bytes32 headerId, bytes32 stateRoot, uint64 inboxProcessed);
    event Inbox(uint64 indexed id, uint8 kind, address indexed account, uint128 amount, bytes32 chainHash);
    event Deposited(uint64 indexed inboxId, address indexed depositor, address indexed recipient, uint128 amount);
    event ExitStarted(uint256 indexed exitId, uint8 kind, address indexed owner, uint64 checkpointHeight, uint128 amount, uint64 exitableAt);
    event ExitChallenged(uint256 indexed exitId, address indexed challenger, uint64 checkpointHeight);
    event ExitFinalized(uint256 indexed exitId, address indexed owner, uint128 amount);
    event ExitCancelled(uint256 indexed exitId);
    event ChallengeCommitted(bytes32 indexed commitment, address indexed committer);
    event EquivocationProven(uint64 height, bytes32 firstId, bytes32 secondId);
    event DepositReclaimed(uint64 indexed inboxId, address indexed depositor, uint128 amount);
    event Withdrawal(address indexed account, address to, uint256 amount);

    /// Inbox entry kinds (TCP processes them in order; docs/bridge.md).
    uint8 public constant INBOX_DEPOSIT = 0;
    uint8 public constant INBOX_EXIT_STARTED = 1;
    uint8 public constant INBOX_EXIT_CANCELLED = 2;
    uint8 public constant INBOX_EXIT_FINALIZED = 3;

    uint8 public constant EXIT_WITHDRAWAL = 1;
    uint8 public constant EXIT_ACCOUNT = 2;

    uint8 private constant ACTIVE = 1;
    uint8 private constant CHALLENGED = 2;
    uint8 private constant FINALIZED = 3;
    uint8 private constant CANCELLED = 4;

    /// TCP state keys (docs/state-proofs.md).
    bytes1 private constant BRIDGE_ACCOUNT_TAG = 0x19;
    bytes1 private constant WITHDRAWAL_TAG = 0x1a;
    bytes32 private constant BRIDGE_STATUS_KEY = keccak256(abi.encodePacked(bytes1(0x06), "bridge"));
    /// root-chain id (8) ‖ contract (20) ‖ inbox processed (8) ‖ inbox hash (32) ‖ next withdrawal id (8)
    uint256 private constant STATUS_BYTES = 76;
    /// owner (20) ‖ recipient (20) ‖ amount (16) ‖ height (8)
    uint256 private constant RECORD_BYTES = 64;
    /// balance (16) ‖ spends (8) ‖ exits (4) ‖ locked (1)
    uint256 private constant ACCOUNT_BYTES = 29;
    uint256 private constant MAX_PROOF_DEPTH = 256;

    uint64 public immutable challengePeriod;
    uint64 public immutable freezePeriod;
    uint128 public immutable exitBond;
    uint128 public immutable minDeposit;
    /// Root-chain blocks TCP waits before it credits an inbox entry (read by nodes, checked
    /// against their genesis).
    uint64 public immutable confirmationDepth;

    /// Two storage slots: the root, and the rest packed (the header id is in the event only).
    struct Checkpoint {
        bytes32 stateRoot;
        uint64 submittedAt;
        uint64 inboxProcessed;
    }

    struct Exit {
        uint8 kind;
        uint8 status;
        address owner;
        uint64 checkpointHeight;
        uint64 exitableAt;
        uint128 amount;
        /// Withdrawal exits: the record id; account exits: the account's spends at the checkpoint.
        uint64 recordOrSpends;
    }

    /// An inbox entry's time, and for a deposit who made it and how much (two slots; one for
    /// an exit event).
    struct InboxRecord {
        address depositor;
        uint64 time;
        uint128 amount;
        bool reclaimed;
    }

    mapping(uint64 => Checkpoint) public checkpoints;
    /// One slot: the latest checkpoint's height and time, the lowest height shown to have two
    /// signed headers (0: none), and the highest checkpoint an exit was paid from.
    uint64 public latestHeight;
    uint64 public lastCheckpointAt;
    uint64 public equivocationHeight;
    uint64 public highestPaidHeight;
    /// The most inbox entries any accepted checkpoint showed processed: a deposit below it was
    /// credited in a state some exit may have used, so it is never reclaimed.
    uint64 public maxInboxProcessed;

    uint64 public inboxCount;
    /// The inbox's running hash after `n` entries (`inboxHashAt[0]` is zero).
    mapping(uint64 => bytes32) public inboxHashAt;
    mapping(uint64 => InboxRecord) public inbox;

    Exit[] public exits;
    uint256 public nextToFinalize;
    mapping(uint64 => bool) public withdrawalExiting;
    /// exit id + 1 of an account's active exit.
    mapping(address => uint256) public activeAccountExit;
    /// The amounts of an account's exits paid so far, in order (TCP counts them as `exits`).
    mapping(address => uint128[]) public accountExitAmounts;
    /// Half of each disproved exit's bond, kept by the contract (so challenging oneself costs).
    uint256 public burnedBonds;
    /// commitment => block number it was made in.
    mapping(bytes32 => uint256) public challengeCommitments;

    mapping(address => uint256) public withdrawable;
    /// Sum of `withdrawable`: with the bonds of active exits and what TCP holds, what this
    /// contract's balance must cover.
    uint256 public totalWithdrawable;
    uint256 private entered = 1;

    modifier nonReentrant() {
        if (entered != 1) revert Reentrant();
        entered = 2;
        _;
        entered = 1;
    }

    constructor(
        string memory chainId_,
        bytes memory groupKey_,
        uint64 challengePeriod_,
        uint64 freezePeriod_,
        uint128 exitBond_,
        uint128 minDeposit_,
        uint64 confirmationDepth_
    ) TcpLightClient(chainId_, groupKey_) {
        if (
            challengePeriod_ == 0 || challengePeriod_ >= freezePeriod_ || freezePeriod_ > 3650 days || exitBond_ < 2
                || block.chainid > type(uint64).max
        ) revert BadParameters();
        challengePeriod = challengePeriod_;
        freezePeriod = freezePeriod_;
        exitBond = exitBond_;
        minDeposit = minDeposit_ == 0 ? 1 : minDeposit_;
        confirmationDepth = confirmationDepth_;
        lastCheckpointAt = uint64(block.timestamp);
    }

    // ------------------------------------------------------------------ state

    /// No checkpoint for the freeze period, or an equivocation shown.
    function frozen() public view returns (bool) {
        return equivocationHeight != 0 || block.timestamp > uint256(lastCheckpointAt) + freezePeriod;
    }

    function accountExitCount(address account) external view returns (uint256) {
        return accountExitAmounts[account].length;
    }

    function exitCount() external view returns (uint256) {
        return exits.length;
    }

    // ------------------------------------------------------------------ checkpoints

    /// @notice Relay a checkpoint: a header of a greater height than the latest, its φ, and the
    /// proof of TCP's bridge status leaf in its state.
    function submitCheckpoint(
        bytes calldata header,
        uint32 round,
        bytes calldata signature,
        bytes calldata status,
        bytes32[] calldata siblings
    ) external {
        if (frozen()) revert Frozen();
        (uint64 height, bytes32 stateRoot, bytes32 headerId) = verifyHeader(header, round, signature);
        uint64 latest = latestHeight;
        if (height <= latest) revert HeightNotAfterLatest(height, latest);
        if (status.length != STATUS_BYTES) revert BadStatusLeaf();
        _verifyInclusion(stateRoot, BRIDGE_STATUS_KEY, status, siblings);
        if (uint64(bytes8(status[0:8])) != block.chainid || address(bytes20(status[8:28])) != address(this)) {
            revert WrongRootChain();
        }
        uint64 processed = uint64(bytes8(status[28:36]));
        if (processed > inboxCount || bytes32(status[36:68]) != inboxHashAt[processed]) revert InboxMismatch();
        // A chain that leaves the inbox unprocessed (deposits uncredited, exits unlocked) gets
        // no checkpoint: the bridge freezes and the escape hatch opens.
        if (processed < inboxCount && block.timestamp > uint256(inbox[processed].time) + challengePeriod) revert InboxOverdue(processed);
        checkpoints[height] = Checkpoint(stateRoot, uint64(block.timestamp), processed);
        latestHeight = height;
        lastCheckpointAt = uint64(block.timestamp);
        if (processed > maxInboxProcessed) maxInboxProcessed = processed;
        emit CheckpointSubmitted(height, headerId, stateRoot, processed);
    }

    /// @notice Two headers of one height, each with a valid φ: the committee equivocated. The
    /// bridge freezes; checkpoints from that height on are no longer used — but never one an
    /// exit was already paid from (what was paid stays paid: rolling back below it would pay
    /// again).
    function proveEquivocation(
        bytes calldata firstHeader,
        uint32 firstRound,
        bytes calldata firstSignature,
        bytes calldata secondHeader,
        uint32 secondRound,
        bytes calldata secondSignature
    ) external {
        (uint64 height, , bytes32 firstId) = verifyHeader(firstHeader, firstRound, firstSignature);
        (uint64 otherHeight, , bytes32 secondId) = verifyHeader(secondHeader, secondRound, secondSignature);
        if (height != otherHeight || firstId == secondId || height == 0) revert NotEquivocation();
        uint64 cutoff = height > highestPaidHeight ? height : highestPaidHeight + 1;
        if (equivocationHeight == 0 || cutoff < equivocationHeight) equivocationHeight = cutoff;
        emit EquivocationProven(height, firstId, secondId);
    }

    // ------------------------------------------------------------------ deposits

    /// @notice Lock `msg.value` for `recipient` on TCP (credited once TCP processes the inbox
    /// entry, after the confirmation depth).
    function deposit(address recipient) external payable {
        if (frozen()) revert Frozen();
        if (recipient == address(0) || msg.value < minDeposit || msg.value > type(uint128).max) revert BadDeposit();
        uint64 id = inboxCount;
        inbox[id] = InboxRecord(msg.sender, uint64(block.timestamp), uint128(msg.value), false);
        _append(INBOX_DEPOSIT, recipient, uint128(msg.value));
        emit Deposited(id, msg.sender, recipient, uint128(msg.value));
    }

    /// @notice After a freeze: take back a deposit that no accepted checkpoint showed credited
    /// (no state an exit can use holds a balance from it, so nothing else pays it out).
    function reclaimDeposit(uint64 inboxId) external {
        if (!frozen()) revert NotFrozen();
        InboxRecord storage d = inbox[inboxId];
        if (d.amount == 0 || d.reclaimed || inboxId < maxInboxProcessed) revert NotReclaimable();
        d.reclaimed = true;
        _credit(d.depositor, d.amount);
        emit DepositReclaimed(inboxId, d.depositor, d.amount);
    }

    // ------------------------------------------------------------------ exits

    /// @notice Exit a withdrawal record (written when its amount was burned on TCP) that the
    /// checkpoint at `height` holds. Only its recipient may; a record exits once.
    function startWithdrawalExit(uint64 height, uint64 recordId, bytes calldata record, bytes32[] calldata siblings)
        external
        payable
    {
        if (msg.value != exitBond) revert WrongBond(exitBond);
        Checkpoint storage cp = _usableCheckpoint(height);
        if (record.length != RECORD_BYTES) revert BadRecord();
        _verifyInclusion(cp.stateRoot, keccak256(abi.encodePacked(WITHDRAWAL_TAG, recordId)), record, siblings);
        if (address(bytes20(record[20:40])) != msg.sender) revert NotTheOwner();
        uint128 amount = uint128(bytes16(record[40:56]));
        if (amount == 0) revert NothingToExit();
        if (withdrawalExiting[recordId]) revert AlreadyExiting();
        withdrawalExiting[recordId] = true;
        _startExit(EXIT_WITHDRAWAL, msg.sender, height, amount, recordId);
    }

    /// @notice Exit the caller's bridged balance as the checkpoint at `height` shows it (the
    /// escape hatch). TCP locks the account when it sees this; a later checkpoint in which the
    /// account spent cancels the exit. Earlier account exits of the caller that the checkpoint
    /// does not show processed (its `exits` below the count paid) are taken off the amount, as
    /// TCP takes them off when it processes them.
    function startAccountExit(uint64 height, bytes calldata account, bytes32[] calldata siblings) external payable {
        if (msg.value != exitBond) revert WrongBond(exitBond);
        Checkpoint storage cp = _usableCheckpoint(height);
        if (account.length != ACCOUNT_BYTES) revert BadRecord();
        _verifyInclusion(cp.stateRoot, keccak256(abi.encodePacked(BRIDGE_ACCOUNT_TAG, msg.sender)), account, siblings);
        if (activeAccountExit[msg.sender] != 0) revert AlreadyExiting();
        uint128 balance = _afterPaidExits(msg.sender, uint128(bytes16(account[0:16])), uint32(bytes4(account[24:28])));
        if (balance == 0) revert NothingToExit();
        uint256 id = _startExit(EXIT_ACCOUNT, msg.sender, height, balance, uint64(bytes8(account[16:24])));
        activeAccountExit[msg.sender] = id + 1;
        _append(INBOX_EXIT_STARTED, msg.sender, balance);
    }

    /// @notice First step of a challenge: commit to keccak256(abi.encode(exitId, challenger,
    /// height, keccak256(account), salt)) at least a block before revealing it, so nobody who
    /// sees the reveal can take its reward by sending it first.
    function commitChallenge(bytes32 commitment) external {
        if (challengeCommitments[commitment] == 0) {
            challengeCommitments[commitment] = block.number;
            emit ChallengeCommitted(commitment, msg.sender);
        }
    }

    /// @notice Cancel an account exit with a checkpoint later than its own in which the account
    /// spent (its spends counter is higher). The challenger, named in the commitment with the
    /// evidence, gets half the exit's bond; the other half is burned, so an exiter who
    /// challenges itself still loses it.
    function challengeAccountExit(
        uint256 exitId,
        bytes32 salt,
        uint64 height,
        bytes calldata account,
        bytes32[] calldata siblings
    ) external {
        bytes32 commitment = keccak256(abi.encode(exitId, msg.sender, height, keccak256(account), salt));
        uint256 committedAt = challengeCommitments[commitment];
        if (committedAt == 0 || committedAt >= block.number) revert ChallengeNotCommitted();
        if (exitId >= exits.length) revert NoSuchExit();
        Exit storage e = exits[exitId];
        if (e.kind != EXIT_ACCOUNT || e.status != ACTIVE || block.timestamp >= e.exitableAt) revert ExitNotChallengeable();
        if (height <= e.checkpointHeight) revert ChallengeNotLater();
        Checkpoint storage cp = _usableCheckpoint(height);
        if (account.length != ACCOUNT_BYTES) revert BadRecord();
        _verifyInclusion(cp.stateRoot, keccak256(abi.encodePacked(BRIDGE_ACCOUNT_TAG, e.owner)), account, siblings);
        if (uint64(bytes8(account[16:24])) <= e.recordOrSpends) revert DidNotSpend();
        delete challengeCommitments[commitment];
        e.status = CHALLENGED;
        activeAccountExit[e.owner] = 0;
        uint128 reward = exitBond / 2;
        _credit(msg.sender, reward);
        burnedBonds += exitBond - reward;
        _append(INBOX_EXIT_CANCELLED, e.owner, e.amount);
        emit ExitChallenged(exitId, msg.sender, height);
    }

    /// @notice Settle up to `max` exits whose challenge period is over, first in first out (an
    /// exit challenged meanwhile is skipped). Each payout is credited, to be pulled with
    /// `withdraw`: no recipient can block the queue. An exit from a checkpoint at or above a
    /// proven equivocation is cancelled, its bond returned.
    function finalizeExits(uint256 max) external nonReentrant returns (uint256 settled) {
        uint256 next = nextToFinalize;
        uint256 end = exits.length;
        while (next < end && settled < max) {
            Exit storage e = exits[next];
            if (e.status == ACTIVE) {
                if (block.timestamp < e.exitableAt) break;
                _settle(next, e);
                settled++;
            }
            next++;
        }
        nextToFinalize = next;
    }

    /// @notice Pull what this contract owes the caller (exits, bonds, reclaimed deposits).
    function withdraw() external {
        _withdrawTo(payable(msg.sender));
    }

    /// @notice Pull what is owed to the caller into another address (for a caller that cannot
    /// receive ETH itself).
    function withdrawTo(address payable to) external {
        _withdrawTo(to);
    }

    // ------------------------------------------------------------------ internals

    function _withdrawTo(address payable to) private nonReentrant {
        uint256 amount = withdrawable[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        withdrawable[msg.sender] = 0;
        totalWithdrawable -= amount;
        (bool ok, ) = to.call{value: amount}("");
        if (!ok) revert PayoutFailed();
        emit Withdrawal(msg.sender, to, amount);
    }

    function _settle(uint256 id, Exit storage e) private {
        bool usable = equivocationHeight == 0 || e.checkpointHeight < equivocationHeight;
        if (usable) {
            e.status = FINALIZED;
            _credit(e.owner, uint256(e.amount) + exitBond);
            if (e.checkpointHeight > highestPaidHeight) highestPaidHeight = e.checkpointHeight;
            if (e.kind == EXIT_ACCOUNT) {
                accountExitAmounts[e.owner].push(e.amount);
                activeAccountExit[e.owner] = 0;
                _append(INBOX_EXIT_FINALIZED, e.owner, e.amount);
            }
            emit ExitFinalized(id, e.owner, e.amount);
        } else {
            e.status = CANCELLED;
            _credit(e.owner, exitBond);
            if (e.kind == EXIT_ACCOUNT) {
                activeAccountExit[e.owner] = 0;
                _append(INBOX_EXIT_CANCELLED, e.owner, e.amount);
            } else {
                withdrawalExiting[e.recordOrSpends] = false;
            }
            emit ExitCancelled(id);
        }
    }

    function _startExit(uint8 kind, address owner, uint64 height, uint128 amount, uint64 recordOrSpends)
        private
        returns (uint256 id)
    {
        id = exits.length;
        uint64 exitableAt = uint64(block.timestamp) + challengePeriod;
        exits.push(Exit(kind, ACTIVE, owner, height, exitableAt, amount, recordOrSpends));
        emit ExitStarted(id, kind, owner, height, amount, exitableAt);
    }

    function _credit(address to, uint256 amount) private {
        withdrawable[to] += amount;
        totalWithdrawable += amount;
    }

    /// A balance a checkpoint shows, less the account exits paid since that it does not show
    /// processed (`shown` of them it does).
    function _afterPaidExits(address account, uint128 balance, uint32 shown) private view returns (uint128) {
        uint128[] storage paid = accountExitAmounts[account];
        if (shown > paid.length) revert ExitsNotProcessed(shown, uint32(paid.length));
        for (uint256 i = shown; i < paid.length && balance > 0; i++) {
            balance -= paid[i] < balance ? paid[i] : balance;
        }
        return balance;
    }

    /// Append an entry to the inbox TCP processes: its running hash chains every entry before.
    function _append(uint8 kind, address account, uint128 amount) private {
        uint64 id = inboxCount;
        if (kind != INBOX_DEPOSIT) inbox[id].time = uint64(block.timestamp);
        bytes32 chained = keccak256(abi.encodePacked(inboxHashAt[id], id, kind, account, amount));
        inboxCount = id + 1;
        inboxHashAt[id + 1] = chained;
        emit Inbox(id, kind, account, amount, chained);
    }

    /// A checkpoint exits and challenges may use: one that exists, below any equivocation.
    function _usableCheckpoint(uint64 height) private view returns (Checkpoint storage cp) {
        cp = checkpoints[height];
        if (cp.submittedAt == 0) revert NoSuchCheckpoint(height);
        if (equivocationHeight != 0 && height >= equivocationHeight) revert CheckpointNotUsable(height);
    }

    /// Inclusion of `key` with `value` under `root` in TCP's sparse Merkle tree
    /// (docs/state-proofs.md): siblings from the root down.
    function _verifyInclusion(bytes32 root, bytes32 key, bytes calldata value, bytes32[] calldata siblings) private pure {
        uint256 depth = siblings.length;
        if (depth > MAX_PROOF_DEPTH) revert TooDeep();
        bytes32 h = keccak256(abi.encodePacked(bytes1(0x00), key, keccak256(value)));
        for (uint256 i = depth; i > 0; i--) {
            uint256 d = i - 1;
            h = ((uint256(key) >> (255 - d)) & 1) == 1
                ? keccak256(abi.encodePacked(bytes1(0x01), siblings[d], h))
                : keccak256(abi.encodePacked(bytes1(0x01), h, siblings[d]));
        }
        if (h != root || root == bytes32(0)) revert ProofDoesNotVerify();
    }
}
