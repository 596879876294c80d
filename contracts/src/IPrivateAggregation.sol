// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title IPrivateAggregation
/// @notice Interface of PrivateAggregation: transactive HEMS rounds with double-masked secure
/// aggregation (pairwise masks, a mask shared with the DSO and a per-home self-mask). The one
/// place where the contract's status enum, events and custom errors are declared. Protocol and
/// masking scheme: docs/design.md, sections 3 and 4.
/// @dev Units and fixed-point scales of every value:
/// - power: signed watts as elements of Z_(2^128) (two's complement mod 2^128); a masked word
///   or a sum of masked words is uniform in that ring to anyone without the keys;
/// - two words (lower field, upper field) travel packed in one uint256 where noted:
///   (upper << 128) | lower;
/// - prices: micro-$/kWh as int64 (DLMP bands can be negative);
/// - lambda: dispatch factor in [0, 1] scaled by LAMBDA_SCALE = 1e6, as uint32; per-group
///   values travel packed, 8 per uint256, lane k (bits 32k to 32k+31) of word w holding the
///   group at position 8w+k of the round's opening order;
/// - times: block timestamps in seconds (uint40);
/// - rounds and groups: uint64 identifiers chosen by the DSO; state is keyed by
///   (round, group), never cleared, so opening a round costs O(1) per group.
/// The DSO is the owner (OpenZeppelin Ownable2Step). The ownership functions (owner,
/// pendingOwner, transferOwnership, acceptOwnership, renounceOwnership), the events
/// OwnershipTransferred and OwnershipTransferStarted and the errors OwnableUnauthorizedAccount
/// (a DSO-only function called by another account) and OwnableInvalidOwner are part of the
/// contract's ABI but declared by OpenZeppelin, not here; renounceOwnership always reverts
/// RenounceRefused (a contract without a DSO would stop every round).
interface IPrivateAggregation {
    // ------------------------------------------------------------------ types

    /// @notice Where round `round` of a group stands at the current block time (see `status`).
    /// @dev None: not opened. Open: accepting submissions (block.timestamp <= deadline and not
    /// every member of the round submitted). Recovery: the survivors are fixed (every member
    /// submitted, or the deadline passed with at least minGroupSize submitters) and the round
    /// waits for every survivor's recovery word (its self-mask removed, its pairwise masks
    /// with the dropped members cancelled) until deadline + recoveryPeriod. Complete: every
    /// survivor sent its recovery; the sum is readable with getAgg. Failed: fewer than
    /// minGroupSize submitted by the deadline, or a survivor missed the recovery window; no
    /// sum is revealed.
    enum Status {
        None,
        Open,
        Recovery,
        Complete,
        Failed
    }

    // ------------------------------------------------------------------ events

    /// @notice The DSO's X25519 public key for the home-DSO masks was set (constructor and
    /// setDsoKey). Rounds opened from then on use it; rounds already open keep theirs.
    /// @param key The new X25519 public key (32 bytes, raw).
    /// @param keyIndex Its index in the DSO's key history (0 for the constructor's key).
    event DsoKeySet(bytes32 key, uint24 keyIndex);

    /// @notice The DSO registered a home in an aggregation group (claimUser).
    /// @param home The home's Ethereum address.
    /// @param group The aggregation group it joined.
    /// @param index Its member index in the group: its bit in the submission and recovery
    /// bitmaps and its position in the masking order; never reused.
    /// @param epoch The group's membership epoch after the join (the first epoch that includes it).
    /// @param pubKey The home's X25519 public key for pairwise mask agreement.
    event UserClaimed(address indexed home, uint64 indexed group, uint16 index, uint24 epoch, bytes32 pubKey);

    /// @notice The DSO removed a home from its group (removeUser). Rounds already open keep it
    /// in their member set; it may submit there until their deadline.
    /// @param home The home's address.
    /// @param group The group it left.
    /// @param epoch The group's membership epoch after the removal (the first epoch without it).
    event UserRemoved(address indexed home, uint64 indexed group, uint24 epoch);

    /// @notice The DSO opened a round for a group with its price band (submitPrice).
    /// @param round The round.
    /// @param group The group.
    /// @param pLow Lower end of the price band, micro-$/kWh (the home's Lmax is its demand there).
    /// @param pHigh Upper end of the price band, micro-$/kWh (the home's Lmin is its demand there).
    /// @param deadline Last block timestamp (s, inclusive) at which submitRange is accepted.
    /// @param epoch The group's membership epoch, which fixes the round's member set and the mask keys.
    event PriceSubmitted(
        uint64 indexed round, uint64 indexed group, int64 pLow, int64 pHigh, uint40 deadline, uint24 epoch
    );

    /// @notice A home submitted its masked demand bounds for a round (submitRange).
    /// @param round The round.
    /// @param group The home's group.
    /// @param home The home's address.
    event RangeSubmitted(uint64 indexed round, uint64 indexed group, address indexed home);

    /// @notice A survivor sent its recovery word for a round (recover): its self-mask removed
    /// and its pairwise masks with the round's dropped members cancelled.
    /// @param round The round.
    /// @param group The home's group.
    /// @param home The home's address.
    event RecoverySubmitted(uint64 indexed round, uint64 indexed group, address indexed home);

    /// @notice A group's sum became complete: emitted by the last survivor's recovery.
    /// @param round The round.
    /// @param group The group.
    /// @param contributors Number of homes whose bounds are in the sum.
    event AggregateReady(uint64 indexed round, uint64 indexed group, uint16 contributors);

    /// @notice The DSO posted one dispatch factor for every group of a round (submitLambda, the
    /// seed paper's single lambda).
    /// @param round The round.
    /// @param lambda Dispatch factor scaled by LAMBDA_SCALE (0 to 1e6).
    event LambdaSubmitted(uint64 indexed round, uint32 lambda);

    /// @notice The DSO posted one dispatch factor per group of a round (submitLambdas).
    /// @param round The round.
    /// @param packed The lambdas, 8 per word in the round's opening order (see the interface's
    /// units).
    event LambdasSubmitted(uint64 indexed round, uint256[] packed);

    // ------------------------------------------------------------------ errors

    /// @notice claimUser was given the zero address as the home, or the constructor the zero
    /// address as the registrar.
    error ZeroAddress();

    /// @notice A zero X25519 key was given: the DSO key at deployment or in setDsoKey, or a
    /// home's key in claimUser.
    error ZeroKey();

    /// @notice The deployment asked for a minimum group size below 2.
    /// @param minGroupSize The minimum group size given to the constructor.
    error MinGroupSizeTooSmall(uint16 minGroupSize);

    /// @notice claimUser for an address registered before (also after its removal: a removed
    /// home is never registered again).
    /// @param home The address.
    error AlreadyRegistered(address home);

    /// @notice The account was never registered (submitRange, recover), or removeUser of an
    /// unregistered or already removed home.
    /// @param account The account.
    error NotMember(address account);

    /// @notice claimUser in a group that has handed out MAX_GROUP_SLOTS member indices
    /// (removed homes keep theirs).
    /// @param group The group.
    error GroupFull(uint64 group);

    /// @notice submitPrice for a group with fewer current members than minGroupSize.
    /// @param group The group.
    /// @param members Its current members.
    /// @param minGroupSize The contract's minimum group size.
    error GroupTooSmall(uint64 group, uint16 members, uint16 minGroupSize);

    /// @notice submitPrice with pLow above pHigh.
    /// @param pLow The given lower price, micro-$/kWh.
    /// @param pHigh The given upper price, micro-$/kWh.
    error BandInverted(int64 pLow, int64 pHigh);

    /// @notice submitPrice with a deadline at or before the current block timestamp.
    /// @param deadline The given deadline (s).
    /// @param nowTs The current block timestamp (s).
    error DeadlineNotInFuture(uint40 deadline, uint256 nowTs);

    /// @notice submitPrice for a (round, group) that was opened before.
    /// @param round The round.
    /// @param group The group.
    error RoundAlreadyOpen(uint64 round, uint64 group);

    /// @notice The (round, group) was never opened: submitRange and recover (the caller's
    /// group), getPrice, getSubmissions, getRecoveries, getAgg, roundDsoKey, getLambda.
    /// @param round The round.
    /// @param group The group.
    error RoundNotOpen(uint64 round, uint64 group);

    /// @notice submitRange from a registered home that is not in the round's member set: it
    /// joined its group after the round opened, or was removed before it opened.
    /// @param round The round.
    /// @param home The home.
    error NotInRound(uint64 round, address home);

    /// @notice A second submitRange from the same home for the same round.
    /// @param round The round.
    /// @param home The home.
    error AlreadySubmitted(uint64 round, address home);

    /// @notice submitRange after the round's deadline.
    /// @param round The round.
    /// @param deadline The round's deadline (s).
    error DeadlinePassed(uint64 round, uint40 deadline);

    /// @notice recover while the round's survivors are not fixed yet (the round is Open: before
    /// its deadline, with members still to submit) or after the round completed.
    /// @param round The round.
    /// @param group The caller's group.
    /// @param status The round's status.
    error NotInRecovery(uint64 round, uint64 group, Status status);

    /// @notice recover from a member that did not submit in the round: it is not a survivor,
    /// and it never reveals its self-mask.
    /// @param round The round.
    /// @param home The member.
    error DidNotSubmit(uint64 round, address home);

    /// @notice A second recover from the same home for the same round.
    /// @param round The round.
    /// @param home The home.
    error RecoveryAlreadySent(uint64 round, address home);

    /// @notice recover after the recovery window closed with recoveries missing (the round
    /// failed although at least minGroupSize homes submitted).
    /// @param round The round.
    /// @param recoveryDeadline Deadline plus recoveryPeriod (s), the end of the window.
    error RecoveryClosed(uint64 round, uint40 recoveryDeadline);

    /// @notice Fewer than minGroupSize homes submitted by the deadline, so the round failed and
    /// nothing of it may be revealed: recover (with one survivor, its recovery would expose its
    /// own value) and getAgg.
    /// @param round The round.
    /// @param group The group.
    /// @param contributors Homes that submitted.
    /// @param minGroupSize The contract's minimum group size.
    error GroupBelowMinimum(uint64 round, uint64 group, uint16 contributors, uint16 minGroupSize);

    /// @notice submitLambda or submitLambdas with a value above LAMBDA_SCALE (lambda > 1).
    /// @param lambda The given scaled lambda.
    error LambdaOutOfRange(uint32 lambda);

    /// @notice submitLambdas with a number of words other than one per 8 groups of the round,
    /// or a non-zero lane past the round's last group.
    /// @param round The round.
    /// @param groups The round's groups.
    /// @param words The number of words given.
    error LambdaCountMismatch(uint64 round, uint256 groups, uint256 words);

    /// @notice A second submitLambda or submitLambdas for the same round.
    /// @param round The round.
    error LambdaAlreadySet(uint64 round);

    /// @notice getLambda for a round whose lambda was not posted yet.
    /// @param round The round.
    error LambdaNotSet(uint64 round);

    /// @notice submitLambda or submitLambdas for a round in which no group was opened.
    /// @param round The round.
    error NoGroupsInRound(uint64 round);

    /// @notice submitLambda or submitLambdas while a group of the round is neither Complete
    /// nor Failed.
    /// @param round The round.
    /// @param group The first such group in opening order.
    /// @param status Its status (Open or Recovery).
    error AggregatesIncomplete(uint64 round, uint64 group, Status status);

    /// @notice renounceOwnership is refused: the contract must always have a DSO (move the role
    /// with transferOwnership and acceptOwnership instead).
    error RenounceRefused();

    // ------------------------------------------------------------------ constants and state

    /// @notice Most member indices one group can ever hand out (the submission bitmap is 160 bits).
    /// @return The limit, 160.
    function MAX_GROUP_SLOTS() external view returns (uint256);

    /// @notice Fixed-point scale of lambda on chain.
    /// @return The scale, 1e6 (lambda = 1 is 1,000,000).
    function LAMBDA_SCALE() external view returns (uint32);

    /// @notice Minimum number of submitters for a round to reveal a sum, and of current members
    /// for a group to be opened (fixed at deployment, at least 2).
    /// @return The minimum group size.
    function minGroupSize() external view returns (uint16);

    /// @notice Length of the recovery window after a round's deadline (fixed at deployment).
    /// @return The window in seconds.
    function recoveryPeriod() external view returns (uint40);

    /// @notice The registrar (e.g. the meter certifier), fixed at deployment: the party other
    /// than the DSO whose signature attests each member's (address, group, key). The contract
    /// stores the attestations; homes verify them (docs/design.md, section 4).
    /// @return The registrar's address.
    function registrar() external view returns (address);

    /// @notice The DSO's current X25519 public key, used by rounds opened from now on.
    /// @return The key (32 bytes, raw).
    function dsoKey() external view returns (bytes32);

    /// @notice The DSO's X25519 public key that a round was opened with (its home-DSO masks).
    /// @param round The round.
    /// @param group The group.
    /// @return The key (32 bytes, raw).
    function roundDsoKey(uint64 round, uint64 group) external view returns (bytes32);

    /// @notice X25519 public key a home was registered with (zero if never registered); fixed
    /// for the home's lifetime.
    /// @param home The home's address.
    /// @return The key (32 bytes, raw).
    function pubKeyOf(address home) external view returns (bytes32);

    /// @notice The registrar's attestation of a home's (address, group, key), as the DSO
    /// registered it: an EIP-2098 compact signature of the EIP-191 message of
    /// keccak256(abi.encode(keccak256("blockhems/member-attestation/v1"), chainid, contract,
    /// home, group, pubKey)). Not checked by the contract.
    /// @param home The home's address.
    /// @return r The signature's r.
    /// @return vs The signature's s with the recovery bit (v - 27) in its top bit.
    function attestationOf(address home) external view returns (bytes32 r, bytes32 vs);

    /// @notice The DSO's address: the owner. Transfer with transferOwnership + acceptOwnership.
    /// @return The DSO's address.
    function dso() external view returns (address);

    // ------------------------------------------------------------------ DSO: membership

    /// @notice Replace the DSO's X25519 public key for rounds opened from now on. DSO only.
    /// @dev Rounds already open keep the key they opened with (roundDsoKey), so their masks
    /// stay removable by the DSO's previous key.
    /// @param key The new key (32 bytes, raw, non-zero).
    function setDsoKey(bytes32 key) external;

    /// @notice Whitelist a home in a group with its X25519 public key for mask agreement and
    /// the registrar's attestation of the three. DSO only. The home gets the group's next
    /// member index and the group's epoch is bumped; the home is in the member set of rounds
    /// opened from then on.
    /// @param home The home's Ethereum address (non-zero, never registered before).
    /// @param group The aggregation group (created by its first member).
    /// @param pubKey The home's X25519 public key (32 bytes, raw, non-zero).
    /// @param attestationR The registrar's signature, r (see attestationOf).
    /// @param attestationVs The registrar's signature, s with the recovery bit (see attestationOf).
    function claimUser(address home, uint64 group, bytes32 pubKey, bytes32 attestationR, bytes32 attestationVs)
        external;

    /// @notice Remove a home from its group. DSO only. The group's epoch is bumped; rounds
    /// opened from then on exclude the home; rounds already open keep it in their member set.
    /// @param home The home's address (a current member).
    function removeUser(address home) external;

    // ------------------------------------------------------------------ DSO: rounds

    /// @notice Open round `round` for `group` with its price band and submission deadline. DSO
    /// only. Fixes the round's member set (the group's current epoch), the number of expected
    /// submissions (its current members) and the DSO key of its masks (the current dsoKey).
    /// @param round The round (any id not yet opened for this group).
    /// @param group The group (at least minGroupSize current members).
    /// @param pLow Lower end of the band, micro-$/kWh.
    /// @param pHigh Upper end of the band, micro-$/kWh (>= pLow).
    /// @param deadline Last block timestamp (s) at which submissions are accepted (in the future).
    function submitPrice(uint64 round, uint64 group, int64 pLow, int64 pHigh, uint40 deadline) external;

    /// @notice Post one dispatch factor for every group of a round (the seed paper's single
    /// lambda) once every group of the round is Complete or Failed. DSO only; once per round
    /// (either this or submitLambdas).
    /// @param round The round (at least one group opened).
    /// @param lambda Dispatch factor scaled by LAMBDA_SCALE (0 to 1e6).
    function submitLambda(uint64 round, uint32 lambda) external;

    /// @notice Post one dispatch factor per group of a round once every group of the round is
    /// Complete or Failed. DSO only; once per round (either this or submitLambda).
    /// @param round The round (at least one group opened).
    /// @param packed The lambdas scaled by LAMBDA_SCALE, 8 per word in the round's opening order
    /// (getRoundGroups): ceil(groups / 8) words, lanes past the last group zero.
    function submitLambdas(uint64 round, uint256[] calldata packed) external;

    // ------------------------------------------------------------------ homes

    /// @notice Submit the masked lower and upper bound of next-slot demand, once per round,
    /// until the deadline. Caller: a member of the round's member set (fixed when the round
    /// opened; a later removal does not stop it). The words are added mod 2^128 to the
    /// group's sums.
    /// @param round The round of the caller's group.
    /// @param maskedLower Lmin (W) plus the home's pairwise masks, its DSO mask and its
    /// self-mask, mod 2^128.
    /// @param maskedUpper Lmax (W), masked the same way with the field's own masks.
    function submitRange(uint64 round, uint128 maskedLower, uint128 maskedUpper) external;

    /// @notice Once the round's survivors are fixed (status Recovery), a survivor adds its
    /// recovery word: minus its self-mask and minus its pairwise masks with the members that
    /// did not submit. Once per survivor, until deadline + recoveryPeriod; refused when fewer
    /// than minGroupSize homes submitted. The round completes with the last survivor's word.
    /// @param round The round of the caller's group.
    /// @param words The two recovery words (lower, upper) packed as (upper << 128) | lower,
    /// each mod 2^128.
    function recover(uint64 round, uint256 words) external;

    // ------------------------------------------------------------------ views

    /// @notice Where round `round` of `group` stands at the current block time.
    /// @param round The round.
    /// @param group The group.
    /// @return The status (see Status).
    function status(uint64 round, uint64 group) external view returns (Status);

    /// @notice The price band and deadline of an opened round.
    /// @param round The round.
    /// @param group The group.
    /// @return pLow Lower end of the band, micro-$/kWh.
    /// @return pHigh Upper end of the band, micro-$/kWh.
    /// @return deadline Last block timestamp (s) for submissions.
    function getPrice(uint64 round, uint64 group)
        external
        view
        returns (int64 pLow, int64 pHigh, uint40 deadline);

    /// @notice A group's sums once complete, still masked by the contributors' masks with the
    /// DSO (only the DSO can remove them). Reverts GroupBelowMinimum when fewer than
    /// minGroupSize submitted; incomplete sums read as zero.
    /// @param round The round.
    /// @param group The group.
    /// @return lowerSum Sum of the submitted lower words and recovery words, mod 2^128 (0 unless complete).
    /// @return upperSum Sum of the submitted upper words and recovery words, mod 2^128 (0 unless complete).
    /// @return contributors Homes that submitted.
    /// @return complete Whether the status is Complete.
    function getAgg(uint64 round, uint64 group)
        external
        view
        returns (uint128 lowerSum, uint128 upperSum, uint16 contributors, bool complete);

    /// @notice Who submitted in an opened round, and the round's fixed parameters.
    /// @param round The round.
    /// @param group The group.
    /// @return bitmap Bit i set: member index i submitted.
    /// @return count Homes that submitted.
    /// @return deadline Last block timestamp (s) for submissions.
    /// @return epoch Group epoch at opening: the round's member set is the members of this epoch.
    /// @return expected Members of the round's member set.
    function getSubmissions(uint64 round, uint64 group)
        external
        view
        returns (uint160 bitmap, uint16 count, uint40 deadline, uint24 epoch, uint16 expected);

    /// @notice Which survivors sent their recovery word in a round.
    /// @param round The round.
    /// @param group The group.
    /// @return bitmap Bit i set: member index i sent its recovery.
    /// @return count Recovery words received.
    function getRecoveries(uint64 round, uint64 group) external view returns (uint160 bitmap, uint16 count);

    /// @notice The dispatch factor of a group in a round: the round's single lambda
    /// (submitLambda) or the group's own (submitLambdas). Reverts LambdaNotSet before the DSO
    /// posted it, RoundNotOpen for a group not opened in the round.
    /// @param round The round.
    /// @param group The group.
    /// @return Lambda scaled by LAMBDA_SCALE (0 to 1e6).
    function getLambda(uint64 round, uint64 group) external view returns (uint32);

    /// @notice A home's membership record.
    /// @param home The home's address.
    /// @return group Its group.
    /// @return index Its member index in the group.
    /// @return joinedEpoch Group epoch that first included it.
    /// @return removedEpoch Group epoch that first excluded it (0 while a member).
    /// @return registered Whether it was ever registered.
    function getMember(address home)
        external
        view
        returns (uint64 group, uint16 index, uint24 joinedEpoch, uint24 removedEpoch, bool registered);

    /// @notice A group's membership counters.
    /// @param group The group.
    /// @return slots Member indices handed out so far (removed homes keep theirs).
    /// @return active Current members.
    /// @return epoch Membership epoch, bumped on every join and removal.
    function getGroup(uint64 group) external view returns (uint16 slots, uint16 active, uint24 epoch);

    /// @notice Every home ever given an index in the group, by index; clients select a round's
    /// member set by epoch with getMember.
    /// @param group The group.
    /// @return The home addresses, position = member index.
    function getGroupSlots(uint64 group) external view returns (address[] memory);

    /// @notice The groups opened in a round, in opening order (the order of submitLambdas).
    /// @param round The round.
    /// @return The group ids.
    function getRoundGroups(uint64 round) external view returns (uint64[] memory);
}
