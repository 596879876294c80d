// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title IPrivateAggregation
/// @notice Interface of PrivateAggregation: transactive HEMS rounds with pairwise-mask secure
/// aggregation. The one place where the contract's status enum, events and custom errors are
/// declared. Protocol and masking scheme: docs/design.md.
/// @dev Units and fixed-point scales of every value:
/// - power: signed watts as elements of Z_(2^128) (two's complement mod 2^128); a masked word
///   or a sum of masked words is uniform in that ring to anyone without the keys;
/// - prices: micro-$/kWh as int64 (DLMP bands can be negative);
/// - lambda: dispatch factor in [0, 1] scaled by LAMBDA_SCALE = 1e6, as uint32;
/// - times: block timestamps in seconds (uint40);
/// - rounds and groups: uint64 identifiers chosen by the DSO; state is keyed by
///   (round, group), never cleared, so opening a round costs O(1) per group.
/// The DSO is the owner (OpenZeppelin Ownable2Step). The ownership functions (owner,
/// pendingOwner, transferOwnership, acceptOwnership, renounceOwnership), the events
/// OwnershipTransferred and OwnershipTransferStarted and the errors OwnableUnauthorizedAccount
/// (a DSO-only function called by another account) and OwnableInvalidOwner are part of the
/// contract's ABI but declared by OpenZeppelin, not here.
interface IPrivateAggregation {
    // ------------------------------------------------------------------ types

    /// @notice Where round `round` of a group stands at the current block time (see `status`).
    /// @dev None: not opened. Open: accepting submissions (block.timestamp <= deadline and not
    /// every expected member submitted). Recovery: deadline passed, some members missing, at
    /// least minGroupSize submitted, waiting for every submitter's correction until
    /// deadline + recoveryPeriod. Complete: every expected member submitted, or every submitter
    /// sent its correction; the sum is readable with getAgg. Failed: fewer than minGroupSize
    /// submitted by the deadline, or a submitter missed the recovery window; no sum is revealed.
    enum Status {
        None,
        Open,
        Recovery,
        Complete,
        Failed
    }

    // ------------------------------------------------------------------ events

    /// @notice The DSO's X25519 public key for the home-DSO masks was set (constructor and
    /// setDsoKey).
    /// @param key The new X25519 public key (32 bytes, raw).
    event DsoKeySet(bytes32 key);

    /// @notice The DSO registered a home in an aggregation group (claimUser).
    /// @param home The home's Ethereum address.
    /// @param group The aggregation group it joined.
    /// @param index Its member index in the group: its bit in the submission and correction
    /// bitmaps and its position in the masking order; never reused.
    /// @param epoch The group's membership epoch after the join (the first epoch that includes it).
    /// @param pubKey The home's X25519 public key for pairwise mask agreement.
    event UserClaimed(address indexed home, uint64 indexed group, uint16 index, uint24 epoch, bytes32 pubKey);

    /// @notice The DSO removed a home from its group (removeUser).
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

    /// @notice A surviving home submitted its unmasking correction for a round in recovery
    /// (submitCorrection).
    /// @param round The round.
    /// @param group The home's group.
    /// @param home The home's address.
    event CorrectionSubmitted(uint64 indexed round, uint64 indexed group, address indexed home);

    /// @notice A group's sum became complete: emitted by the submission of the last expected
    /// member, or by the last correction of a round in recovery.
    /// @param round The round.
    /// @param group The group.
    /// @param contributors Number of homes whose bounds are in the sum.
    event AggregateReady(uint64 indexed round, uint64 indexed group, uint16 contributors);

    /// @notice The DSO posted the dispatch factor of a round (submitLambda).
    /// @param round The round.
    /// @param lambda Dispatch factor scaled by LAMBDA_SCALE (0 to 1e6).
    event LambdaSubmitted(uint64 indexed round, uint32 lambda);

    // ------------------------------------------------------------------ errors

    /// @notice claimUser was given the zero address as the home.
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

    /// @notice The account is not a current member: removeUser of an unregistered or removed
    /// home, submitRange from an unregistered or removed account, submitCorrection from an
    /// account never registered.
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

    /// @notice The (round, group) was never opened: submitRange (the caller's group), getPrice,
    /// getSubmissions, getAgg.
    /// @param round The round.
    /// @param group The group.
    error RoundNotOpen(uint64 round, uint64 group);

    /// @notice submitRange from a member that joined its group after the round opened (it is
    /// not in the round's member set).
    /// @param round The round.
    /// @param home The member.
    error NotInRound(uint64 round, address home);

    /// @notice A second submitRange from the same home for the same round.
    /// @param round The round.
    /// @param home The home.
    error AlreadySubmitted(uint64 round, address home);

    /// @notice submitRange after the round's deadline.
    /// @param round The round.
    /// @param deadline The round's deadline (s).
    error DeadlinePassed(uint64 round, uint40 deadline);

    /// @notice submitCorrection while the caller's group is not in recovery (not opened, still
    /// open, or already complete).
    /// @param round The round.
    /// @param group The caller's group.
    /// @param status The round's status.
    error NotInRecovery(uint64 round, uint64 group, Status status);

    /// @notice submitCorrection from a member that did not submit in the round (only
    /// submitters' corrections count).
    /// @param round The round.
    /// @param home The member.
    error DidNotSubmit(uint64 round, address home);

    /// @notice A second submitCorrection from the same home for the same round.
    /// @param round The round.
    /// @param home The home.
    error CorrectionAlreadySent(uint64 round, address home);

    /// @notice submitCorrection after the recovery window closed with corrections missing (the
    /// round failed although at least minGroupSize homes submitted).
    /// @param round The round.
    /// @param recoveryDeadline Deadline plus recoveryPeriod (s), the end of the window.
    error RecoveryClosed(uint64 round, uint40 recoveryDeadline);

    /// @notice Fewer than minGroupSize homes submitted by the deadline, so the round failed and
    /// nothing of it may be revealed: submitCorrection (a correction would expose too much;
    /// with one survivor, its own value) and getAgg.
    /// @param round The round.
    /// @param group The group.
    /// @param contributors Homes that submitted.
    /// @param minGroupSize The contract's minimum group size.
    error GroupBelowMinimum(uint64 round, uint64 group, uint16 contributors, uint16 minGroupSize);

    /// @notice submitLambda with a value above LAMBDA_SCALE (lambda > 1).
    /// @param lambda The given scaled lambda.
    error LambdaOutOfRange(uint32 lambda);

    /// @notice A second submitLambda for the same round.
    /// @param round The round.
    error LambdaAlreadySet(uint64 round);

    /// @notice getLambda for a round whose lambda was not posted yet.
    /// @param round The round.
    error LambdaNotSet(uint64 round);

    /// @notice submitLambda for a round in which no group was opened.
    /// @param round The round.
    error NoGroupsInRound(uint64 round);

    /// @notice submitLambda while a group of the round is neither Complete nor Failed.
    /// @param round The round.
    /// @param group The first such group in opening order.
    /// @param status Its status (Open or Recovery).
    error AggregatesIncomplete(uint64 round, uint64 group, Status status);

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

    /// @notice X25519 public key of the DSO, for the home-DSO masks.
    /// @return The key (32 bytes, raw).
    function dsoKey() external view returns (bytes32);

    /// @notice X25519 public key a home was registered with (zero if never registered).
    /// @param home The home's address.
    /// @return The key (32 bytes, raw).
    function pubKeyOf(address home) external view returns (bytes32);

    /// @notice The DSO's address: the owner. Transfer with transferOwnership + acceptOwnership.
    /// @return The DSO's address.
    function dso() external view returns (address);

    // ------------------------------------------------------------------ DSO: membership

    /// @notice Replace the DSO's X25519 public key. DSO only.
    /// @dev Takes effect at once, also for rounds already open; no epoch is bumped.
    /// @param key The new key (32 bytes, raw, non-zero).
    function setDsoKey(bytes32 key) external;

    /// @notice Whitelist a home in a group with its X25519 public key for mask agreement. DSO
    /// only. The home gets the group's next member index and the group's epoch is bumped.
    /// @param home The home's Ethereum address (non-zero, never registered before).
    /// @param group The aggregation group (created by its first member).
    /// @param pubKey The home's X25519 public key (32 bytes, raw, non-zero).
    function claimUser(address home, uint64 group, bytes32 pubKey) external;

    /// @notice Remove a home from its group. DSO only. The group's epoch is bumped; in a round
    /// already open the home can no longer submit and counts as a dropout.
    /// @param home The home's address (a current member).
    function removeUser(address home) external;

    // ------------------------------------------------------------------ DSO: rounds

    /// @notice Open round `round` for `group` with its price band and submission deadline. DSO
    /// only. Fixes the round's member set (the group's current epoch) and the number of
    /// expected submissions (its current members).
    /// @param round The round (any id not yet opened for this group).
    /// @param group The group (at least minGroupSize current members).
    /// @param pLow Lower end of the band, micro-$/kWh.
    /// @param pHigh Upper end of the band, micro-$/kWh (>= pLow).
    /// @param deadline Last block timestamp (s) at which submissions are accepted (in the future).
    function submitPrice(uint64 round, uint64 group, int64 pLow, int64 pHigh, uint40 deadline) external;

    /// @notice Post the dispatch factor of a round once every group of the round is Complete or
    /// Failed. DSO only; once per round. One lambda for every group of the round.
    /// @param round The round (at least one group opened).
    /// @param lambda Dispatch factor scaled by LAMBDA_SCALE (0 to 1e6).
    function submitLambda(uint64 round, uint32 lambda) external;

    // ------------------------------------------------------------------ homes

    /// @notice Submit the masked lower and upper bound of next-slot demand, once per round,
    /// until the deadline. Caller: a current member of the round's member set. The words are
    /// added mod 2^128 to the group's sums.
    /// @param round The round of the caller's group.
    /// @param maskedLower Lmin (W) plus the home's pairwise masks and its DSO mask, mod 2^128.
    /// @param maskedUpper Lmax (W), masked the same way with the field's own masks.
    function submitRange(uint64 round, uint128 maskedLower, uint128 maskedUpper) external;

    /// @notice After the deadline, a home that submitted cancels its pairwise masks with the
    /// members that did not; added mod 2^128 to the group's sums. Only in Recovery, once per
    /// home; refused when fewer than minGroupSize homes submitted.
    /// @param round The round of the caller's group.
    /// @param correctionLower Minus the signed sum of the caller's lower-field masks with the
    /// dropped members, mod 2^128.
    /// @param correctionUpper The same for the upper field.
    function submitCorrection(uint64 round, uint128 correctionLower, uint128 correctionUpper) external;

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
    /// @return lowerSum Sum of the submitted lower words and corrections, mod 2^128 (0 unless complete).
    /// @return upperSum Sum of the submitted upper words and corrections, mod 2^128 (0 unless complete).
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
    /// @return expected Current members when the round opened.
    function getSubmissions(uint64 round, uint64 group)
        external
        view
        returns (uint160 bitmap, uint16 count, uint40 deadline, uint24 epoch, uint16 expected);

    /// @notice Which submitters sent their correction in a round's recovery.
    /// @param round The round.
    /// @param group The group.
    /// @return bitmap Bit i set: member index i sent its correction.
    /// @return count Corrections received.
    function getCorrections(uint64 round, uint64 group) external view returns (uint160 bitmap, uint16 count);

    /// @notice The dispatch factor of a round (reverts LambdaNotSet before the DSO posted it).
    /// @param round The round.
    /// @return Lambda scaled by LAMBDA_SCALE (0 to 1e6).
    function getLambda(uint64 round) external view returns (uint32);

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

    /// @notice The groups opened in a round, in opening order.
    /// @param round The round.
    /// @return The group ids.
    function getRoundGroups(uint64 round) external view returns (uint64[] memory);
}
