// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {IPrivateAggregation} from "./IPrivateAggregation.sol";

/// @title PrivateAggregation
/// @notice Transactive HEMS rounds with double-masked secure aggregation.
///
/// The DSO (the owner) whitelists homes into aggregation groups with the registrar's
/// attestation, posts a price band per round and group, and posts the dispatch factor lambda
/// (one per round, or one per group). Homes submit their demand bounds masked three ways:
/// pairwise masks that cancel in the group sum, a mask shared with the DSO (so only the DSO
/// reads the sum) and a self-mask. Once the round's survivors are fixed, each survivor removes
/// its own self-mask and cancels its pairwise masks with the members that did not submit; a
/// home that did not submit never reveals its self-mask, so its word stays masked.
///
/// Units: power in watts as signed integers mod 2^128, prices in micro-$/kWh,
/// lambda scaled by 1e6, times in block timestamps (seconds).
///
/// State is keyed by round, so nothing is ever cleared and opening a round costs O(1)
/// per group. No transaction loops over homes.
/// @dev The functions, the Status enum, the events and the custom errors are documented and
/// declared in IPrivateAggregation.
contract PrivateAggregation is IPrivateAggregation, Ownable2Step {
    /// @inheritdoc IPrivateAggregation
    uint256 public constant MAX_GROUP_SLOTS = 160;
    /// @inheritdoc IPrivateAggregation
    uint32 public constant LAMBDA_SCALE = 1_000_000;

    /// @dev The sums slot of a round starts at this offset in both halves so that it is
    /// never zero: every submission then pays the same non-zero-to-non-zero SSTORE instead of
    /// the first home paying for a fresh slot. getAgg subtracts it again.
    uint256 private constant SUM_OFFSET = (uint256(1) << 128) | 1;

    /// @inheritdoc IPrivateAggregation
    uint16 public immutable minGroupSize;
    /// @inheritdoc IPrivateAggregation
    uint40 public immutable recoveryPeriod;
    /// @inheritdoc IPrivateAggregation
    address public immutable registrar;

    struct Member {
        uint64 group;
        uint16 index; // stable slot in the group, the bit in the submission bitmap
        uint24 joinedEpoch; // group epoch that first included this home
        uint24 removedEpoch; // group epoch that first excluded it, 0 while a member
        bool registered;
    }

    struct Attestation {
        bytes32 r;
        bytes32 vs;
    }

    struct Group {
        uint16 slots; // member indices handed out so far (removed homes keep theirs)
        uint16 active; // current members
        uint24 epoch; // bumped on every membership change; binds the mask keys
    }

    /// @dev One slot, read and written by every submission.
    struct Submissions {
        uint160 bitmap; // bit i: member index i submitted
        uint16 count;
        uint16 expected; // members of the round's member set
        uint40 deadline;
        uint24 epoch; // group epoch when the round opened: fixes the member set of the round
    }

    /// @dev One slot, written non-zero at opening (`opened`), so that each recovery pays a
    /// non-zero-to-non-zero SSTORE.
    struct Recovery {
        uint160 bitmap; // bit i: member index i sent its recovery word
        uint16 count;
        uint24 dsoKeyIndex; // the DSO key the round opened with
        uint16 position; // the group's position in the round's opening order
        bool opened;
    }

    struct Band {
        int64 pLow; // micro-$/kWh (DLMPs can be negative)
        int64 pHigh; // micro-$/kWh
        uint64 openedAt;
    }

    struct Lambda {
        uint32 value; // the round's single lambda (perGroup false)
        bool set;
        bool perGroup; // values in _lambdaWords
    }

    mapping(address home => Member) private _members;
    /// @inheritdoc IPrivateAggregation
    mapping(address home => bytes32) public pubKeyOf;
    mapping(address home => Attestation) private _attestations;
    bytes32[] private _dsoKeys;
    mapping(uint64 group => Group) private _groups;
    mapping(uint64 group => address[]) private _groupSlots;

    mapping(uint64 round => mapping(uint64 group => Submissions)) private _subs;
    mapping(uint64 round => mapping(uint64 group => uint256)) private _sums;
    mapping(uint64 round => mapping(uint64 group => Recovery)) private _recovery;
    mapping(uint64 round => mapping(uint64 group => Band)) private _bands;
    mapping(uint64 round => uint64[]) private _roundGroups;
    mapping(uint64 round => Lambda) private _lambda;
    mapping(uint64 round => mapping(uint256 word => uint256)) private _lambdaWords;

    /// @notice Deploy with the DSO as owner.
    /// @param dso_ The DSO's address (the owner; non-zero).
    /// @param dsoKey_ The DSO's X25519 public key for the home-DSO masks (non-zero).
    /// @param registrar_ The registrar whose signatures attest the members (non-zero; not the
    /// DSO's own key, which the contract cannot tell).
    /// @param minGroupSize_ Minimum submitters for a round to reveal a sum, and minimum current
    /// members to open a group's round (at least 2).
    /// @param recoveryPeriod_ Length of the recovery window after each deadline (s).
    constructor(address dso_, bytes32 dsoKey_, address registrar_, uint16 minGroupSize_, uint40 recoveryPeriod_)
        Ownable(dso_)
    {
        if (dsoKey_ == bytes32(0)) revert ZeroKey();
        if (registrar_ == address(0)) revert ZeroAddress();
        if (minGroupSize_ < 2) revert MinGroupSizeTooSmall(minGroupSize_);
        _dsoKeys.push(dsoKey_);
        registrar = registrar_;
        minGroupSize = minGroupSize_;
        recoveryPeriod = recoveryPeriod_;
        emit DsoKeySet(dsoKey_, 0);
    }

    // ---------------------------------------------------------------- DSO: membership

    /// @inheritdoc IPrivateAggregation
    function dso() external view returns (address) {
        return owner();
    }

    /// @notice Refused: the contract must always have a DSO.
    /// @dev Overrides OpenZeppelin's Ownable.renounceOwnership; reverts RenounceRefused.
    function renounceOwnership() public view override onlyOwner {
        revert RenounceRefused();
    }

    /// @inheritdoc IPrivateAggregation
    function setDsoKey(bytes32 key) external onlyOwner {
        if (key == bytes32(0)) revert ZeroKey();
        _dsoKeys.push(key);
        emit DsoKeySet(key, uint24(_dsoKeys.length - 1));
    }

    /// @inheritdoc IPrivateAggregation
    function claimUser(address home, uint64 group, bytes32 pubKey, bytes32 attestationR, bytes32 attestationVs)
        external
        onlyOwner
    {
        if (home == address(0)) revert ZeroAddress();
        if (pubKey == bytes32(0)) revert ZeroKey();
        Member storage m = _members[home];
        if (m.registered) revert AlreadyRegistered(home);
        Group storage g = _groups[group];
        if (g.slots >= MAX_GROUP_SLOTS) revert GroupFull(group);
        uint24 epoch = g.epoch + 1;
        uint16 index = g.slots;
        g.epoch = epoch;
        g.slots = index + 1;
        g.active += 1;
        _members[home] = Member(group, index, epoch, 0, true);
        pubKeyOf[home] = pubKey;
        _attestations[home] = Attestation(attestationR, attestationVs);
        _groupSlots[group].push(home);
        emit UserClaimed(home, group, index, epoch, pubKey);
    }

    /// @inheritdoc IPrivateAggregation
    function removeUser(address home) external onlyOwner {
        Member storage m = _members[home];
        if (!m.registered || m.removedEpoch != 0) revert NotMember(home);
        Group storage g = _groups[m.group];
        uint24 epoch = g.epoch + 1;
        g.epoch = epoch;
        g.active -= 1;
        m.removedEpoch = epoch;
        emit UserRemoved(home, m.group, epoch);
    }

    // ---------------------------------------------------------------- DSO: rounds

    /// @inheritdoc IPrivateAggregation
    function submitPrice(uint64 round, uint64 group, int64 pLow, int64 pHigh, uint40 deadline)
        external
        onlyOwner
    {
        if (pLow > pHigh) revert BandInverted(pLow, pHigh);
        if (deadline <= block.timestamp) revert DeadlineNotInFuture(deadline, block.timestamp);
        Group storage g = _groups[group];
        if (g.active < minGroupSize) revert GroupTooSmall(group, g.active, minGroupSize);
        Submissions storage s = _subs[round][group];
        if (s.deadline != 0) revert RoundAlreadyOpen(round, group);
        s.deadline = deadline;
        s.epoch = g.epoch;
        s.expected = g.active;
        _sums[round][group] = SUM_OFFSET;
        uint64[] storage opened = _roundGroups[round];
        _recovery[round][group] = Recovery(0, 0, uint24(_dsoKeys.length - 1), uint16(opened.length), true);
        _bands[round][group] = Band(pLow, pHigh, uint64(block.timestamp));
        opened.push(group);
        emit PriceSubmitted(round, group, pLow, pHigh, deadline, g.epoch);
    }

    /// @inheritdoc IPrivateAggregation
    function submitLambda(uint64 round, uint32 lambda) external onlyOwner {
        if (lambda > LAMBDA_SCALE) revert LambdaOutOfRange(lambda);
        _checkSettled(round);
        _lambda[round] = Lambda(lambda, true, false);
        emit LambdaSubmitted(round, lambda);
    }

    /// @inheritdoc IPrivateAggregation
    /// @dev Loops over the groups of the round (a handful per feeder), never over homes; one
    /// fresh storage slot per 8 groups.
    function submitLambdas(uint64 round, uint256[] calldata packed) external onlyOwner {
        uint256 n = _checkSettled(round);
        uint256 words = (n + 7) / 8;
        if (packed.length != words) revert LambdaCountMismatch(round, n, packed.length);
        for (uint256 w = 0; w < words; ++w) {
            uint256 word = packed[w];
            uint256 lanes = n - 8 * w < 8 ? n - 8 * w : 8;
            if (lanes < 8 && word >> (32 * lanes) != 0) revert LambdaCountMismatch(round, n, packed.length);
            for (uint256 k = 0; k < lanes; ++k) {
                uint32 lam = uint32(word >> (32 * k));
                if (lam > LAMBDA_SCALE) revert LambdaOutOfRange(lam);
            }
            _lambdaWords[round][w] = word;
        }
        _lambda[round] = Lambda(0, true, true);
        emit LambdasSubmitted(round, packed);
    }

    /// @dev Reverts unless lambda may be posted for `round`; returns the round's group count.
    function _checkSettled(uint64 round) private view returns (uint256) {
        if (_lambda[round].set) revert LambdaAlreadySet(round);
        uint64[] storage groups = _roundGroups[round];
        uint256 n = groups.length;
        if (n == 0) revert NoGroupsInRound(round);
        for (uint256 i = 0; i < n; ++i) {
            Status st = status(round, groups[i]);
            if (st != Status.Complete && st != Status.Failed) revert AggregatesIncomplete(round, groups[i], st);
        }
        return n;
    }

    // ---------------------------------------------------------------- homes

    /// @inheritdoc IPrivateAggregation
    function submitRange(uint64 round, uint128 maskedLower, uint128 maskedUpper) external {
        Member memory m = _members[msg.sender];
        if (!m.registered) revert NotMember(msg.sender);
        Submissions memory s = _subs[round][m.group];
        if (s.deadline == 0) revert RoundNotOpen(round, m.group);
        if (block.timestamp > s.deadline) revert DeadlinePassed(round, s.deadline);
        // the round's member set: joined at or before its epoch, not removed by then
        if (m.joinedEpoch > s.epoch || (m.removedEpoch != 0 && m.removedEpoch <= s.epoch)) {
            revert NotInRound(round, msg.sender);
        }
        uint160 bit = uint160(1) << m.index;
        if (s.bitmap & bit != 0) revert AlreadySubmitted(round, msg.sender);
        s.bitmap |= bit;
        s.count += 1;
        _subs[round][m.group] = s;
        _addToSums(round, m.group, (uint256(maskedUpper) << 128) | maskedLower);
        emit RangeSubmitted(round, m.group, msg.sender);
    }

    /// @inheritdoc IPrivateAggregation
    function recover(uint64 round, uint256 words) external {
        Member memory m = _members[msg.sender];
        if (!m.registered) revert NotMember(msg.sender);
        Submissions memory s = _subs[round][m.group];
        if (s.deadline == 0) revert RoundNotOpen(round, m.group);
        if (s.count < s.expected && block.timestamp <= s.deadline) {
            revert NotInRecovery(round, m.group, Status.Open);
        }
        if (s.count < minGroupSize) revert GroupBelowMinimum(round, m.group, s.count, minGroupSize);
        uint160 bit = uint160(1) << m.index;
        if (s.bitmap & bit == 0) revert DidNotSubmit(round, msg.sender);
        Recovery memory rc = _recovery[round][m.group];
        if (rc.bitmap & bit != 0) revert RecoveryAlreadySent(round, msg.sender);
        if (block.timestamp > uint256(s.deadline) + recoveryPeriod) {
            revert RecoveryClosed(round, s.deadline + recoveryPeriod);
        }
        rc.bitmap |= bit;
        rc.count += 1;
        _recovery[round][m.group] = rc;
        _addToSums(round, m.group, words);
        emit RecoverySubmitted(round, m.group, msg.sender);
        if (rc.count == s.count) emit AggregateReady(round, m.group, s.count);
    }

    function _addToSums(uint64 round, uint64 group, uint256 words) private {
        uint256 packed = _sums[round][group];
        // Sums are mod 2^128 by design: the masks are uniform in that ring and cancel there.
        unchecked {
            uint128 lo = uint128(packed) + uint128(words);
            uint128 hi = uint128(packed >> 128) + uint128(words >> 128);
            _sums[round][group] = (uint256(hi) << 128) | lo;
        }
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IPrivateAggregation
    function status(uint64 round, uint64 group) public view returns (Status) {
        Submissions memory s = _subs[round][group];
        if (s.deadline == 0) return Status.None;
        if (s.count < s.expected && block.timestamp <= s.deadline) return Status.Open;
        if (s.count < minGroupSize) return Status.Failed;
        if (_recovery[round][group].count == s.count) return Status.Complete;
        if (block.timestamp <= uint256(s.deadline) + recoveryPeriod) return Status.Recovery;
        return Status.Failed;
    }

    /// @inheritdoc IPrivateAggregation
    function getPrice(uint64 round, uint64 group)
        external
        view
        returns (int64 pLow, int64 pHigh, uint40 deadline)
    {
        Submissions memory s = _subs[round][group];
        if (s.deadline == 0) revert RoundNotOpen(round, group);
        Band memory band = _bands[round][group];
        return (band.pLow, band.pHigh, s.deadline);
    }

    /// @inheritdoc IPrivateAggregation
    function getAgg(uint64 round, uint64 group)
        external
        view
        returns (uint128 lowerSum, uint128 upperSum, uint16 contributors, bool complete)
    {
        Status st = status(round, group);
        if (st == Status.None) revert RoundNotOpen(round, group);
        Submissions memory s = _subs[round][group];
        if (st == Status.Failed && s.count < minGroupSize) {
            revert GroupBelowMinimum(round, group, s.count, minGroupSize);
        }
        if (st != Status.Complete) return (0, 0, s.count, false);
        uint256 packed = _sums[round][group];
        unchecked {
            lowerSum = uint128(packed) - 1;
            upperSum = uint128(packed >> 128) - 1;
        }
        return (lowerSum, upperSum, s.count, true);
    }

    /// @inheritdoc IPrivateAggregation
    function getSubmissions(uint64 round, uint64 group)
        external
        view
        returns (uint160 bitmap, uint16 count, uint40 deadline, uint24 epoch, uint16 expected)
    {
        Submissions memory s = _subs[round][group];
        if (s.deadline == 0) revert RoundNotOpen(round, group);
        return (s.bitmap, s.count, s.deadline, s.epoch, s.expected);
    }

    /// @inheritdoc IPrivateAggregation
    function getRecoveries(uint64 round, uint64 group) external view returns (uint160 bitmap, uint16 count) {
        Recovery memory rc = _recovery[round][group];
        if (!rc.opened) revert RoundNotOpen(round, group);
        return (rc.bitmap, rc.count);
    }

    /// @inheritdoc IPrivateAggregation
    function roundDsoKey(uint64 round, uint64 group) external view returns (bytes32) {
        Recovery memory rc = _recovery[round][group];
        if (!rc.opened) revert RoundNotOpen(round, group);
        return _dsoKeys[rc.dsoKeyIndex];
    }

    /// @inheritdoc IPrivateAggregation
    function dsoKey() external view returns (bytes32) {
        return _dsoKeys[_dsoKeys.length - 1];
    }

    /// @inheritdoc IPrivateAggregation
    function getLambda(uint64 round, uint64 group) external view returns (uint32) {
        Lambda memory l = _lambda[round];
        if (!l.set) revert LambdaNotSet(round);
        Recovery memory rc = _recovery[round][group];
        if (!rc.opened) revert RoundNotOpen(round, group);
        if (!l.perGroup) return l.value;
        return uint32(_lambdaWords[round][rc.position / 8] >> (32 * (rc.position % 8)));
    }

    /// @inheritdoc IPrivateAggregation
    function attestationOf(address home) external view returns (bytes32 r, bytes32 vs) {
        Attestation memory a = _attestations[home];
        return (a.r, a.vs);
    }

    /// @inheritdoc IPrivateAggregation
    function getMember(address home)
        external
        view
        returns (uint64 group, uint16 index, uint24 joinedEpoch, uint24 removedEpoch, bool registered)
    {
        Member memory m = _members[home];
        return (m.group, m.index, m.joinedEpoch, m.removedEpoch, m.registered);
    }

    /// @inheritdoc IPrivateAggregation
    function getGroup(uint64 group) external view returns (uint16 slots, uint16 active, uint24 epoch) {
        Group memory g = _groups[group];
        return (g.slots, g.active, g.epoch);
    }

    /// @inheritdoc IPrivateAggregation
    function getGroupSlots(uint64 group) external view returns (address[] memory) {
        return _groupSlots[group];
    }

    /// @inheritdoc IPrivateAggregation
    function getRoundGroups(uint64 round) external view returns (uint64[] memory) {
        return _roundGroups[round];
    }
}
