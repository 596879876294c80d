// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title SeedBaseline
/// @notice The seed paper's contract as published (Edmonds et al., Algorithm 1), kept as the
/// baseline that gas and privacy are measured against. Do not use it for anything else:
/// - forecasts travel as plaintext strings "lower,upper" (watts), readable by every node;
/// - the DSO and users are claimed by whoever calls first (front-runnable);
/// - state is one shared slot set that the DSO must clear every timeslot, and clearRange and
///   getAgg loop over every submission.
/// One instance aggregates one bus (the paper's "single node").
contract SeedBaseline {
    address public dso;
    mapping(address => bool) public isUser;

    uint256 public upperPrice;
    uint256 public lowerPrice;
    uint256 public lambda;

    string[] private _ranges;
    mapping(address => bool) public submitted;
    address[] private _submitters;

    event DsoClaimed(address dso);
    event UserClaimed(address user);
    event PriceSubmitted(uint256 upperPrice, uint256 lowerPrice);
    event RangeSubmitted(address user, string range);
    event Aggregated(int256 lowerAgg, int256 upperAgg);
    event LambdaSubmitted(uint256 lambda);
    event Cleared(string what);

    error DsoAlreadyClaimed(address dso);
    error UserAlreadyClaimed(address user);
    error NotDSO(address caller);
    error NotUser(address caller);
    error AlreadySubmitted(address user);
    error MalformedRange(string range);

    modifier onlyDSO() {
        if (msg.sender != dso) revert NotDSO(msg.sender);
        _;
    }

    function claimDSO(address account) external {
        if (dso != address(0)) revert DsoAlreadyClaimed(dso);
        dso = account;
        emit DsoClaimed(account);
    }

    function claimUser(address account) external {
        if (isUser[account]) revert UserAlreadyClaimed(account);
        isUser[account] = true;
        emit UserClaimed(account);
    }

    function submitPrice(uint256 upper, uint256 lower) external onlyDSO {
        upperPrice = upper;
        lowerPrice = lower;
        emit PriceSubmitted(upper, lower);
    }

    function getPrice() external view returns (uint256 upper, uint256 lower) {
        return (upperPrice, lowerPrice);
    }

    /// @param range the forecast bounds as the plaintext "lower,upper" in watts, e.g. "9,10".
    function submitRange(string calldata range) external {
        if (!isUser[msg.sender]) revert NotUser(msg.sender);
        if (submitted[msg.sender]) revert AlreadySubmitted(msg.sender);
        submitted[msg.sender] = true;
        _submitters.push(msg.sender);
        _ranges.push(range);
        emit RangeSubmitted(msg.sender, range);
    }

    /// @notice Sum every submitted range on chain and publish the totals in an event.
    function getAgg() external onlyDSO returns (int256 lowerAgg, int256 upperAgg) {
        for (uint256 i = 0; i < _ranges.length; ++i) {
            (int256 lo, int256 hi) = _parseRange(bytes(_ranges[i]));
            lowerAgg += lo;
            upperAgg += hi;
        }
        emit Aggregated(lowerAgg, upperAgg);
    }

    function submitLambda(uint256 value) external onlyDSO {
        lambda = value;
        emit LambdaSubmitted(value);
    }

    function getLambda() external view returns (uint256) {
        return lambda;
    }

    function clearPrice() external onlyDSO {
        upperPrice = 0;
        lowerPrice = 0;
        emit Cleared("price");
    }

    function clearRange() external onlyDSO {
        for (uint256 i = 0; i < _submitters.length; ++i) {
            submitted[_submitters[i]] = false;
        }
        delete _submitters;
        delete _ranges;
        emit Cleared("range");
    }

    function clearLambda() external onlyDSO {
        lambda = 0;
        emit Cleared("lambda");
    }

    function rangeCount() external view returns (uint256) {
        return _ranges.length;
    }

    function _parseRange(bytes memory s) private pure returns (int256 lo, int256 hi) {
        uint256 comma = type(uint256).max;
        for (uint256 i = 0; i < s.length; ++i) {
            if (s[i] == ",") {
                comma = i;
                break;
            }
        }
        if (comma == type(uint256).max) revert MalformedRange(string(s));
        lo = _parseInt(s, 0, comma);
        hi = _parseInt(s, comma + 1, s.length);
    }

    function _parseInt(bytes memory s, uint256 start, uint256 end) private pure returns (int256 value) {
        bool negative = start < end && s[start] == "-";
        if (negative) ++start;
        if (start >= end) revert MalformedRange(string(s));
        for (uint256 i = start; i < end; ++i) {
            uint8 c = uint8(s[i]);
            if (c < 48 || c > 57) revert MalformedRange(string(s));
            value = value * 10 + int256(uint256(c - 48));
        }
        if (negative) value = -value;
    }
}
