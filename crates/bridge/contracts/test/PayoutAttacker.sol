// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import "../PlasmaRoot.sol";

/// @notice For tests only: the recipient of a withdrawal record that attacks its payout. Mode 1
/// refuses every payment (a payout that reverts must block no one else); mode 2 re-enters
/// `withdraw` and mode 3 `finalizeExits` from its receive hook (reentrancy must pay nothing twice).
contract PayoutAttacker {
    PlasmaRoot public immutable root;
    uint8 public mode;
    uint256 public reentered;
    uint256 public refused;

    constructor(PlasmaRoot root_) {
        root = root_;
    }

    function setMode(uint8 mode_) external {
        mode = mode_;
    }

    function startWithdrawalExit(uint64 height, uint64 recordId, bytes calldata record, bytes32[] calldata siblings)
        external
        payable
    {
        root.startWithdrawalExit{value: msg.value}(height, recordId, record, siblings);
    }

    function pull() external {
        root.withdraw();
    }

    function pullTo(address payable to) external {
        root.withdrawTo(to);
    }

    receive() external payable {
        if (mode == 1) revert("PayoutAttacker: refusing payment");
        if (mode == 2) {
            try root.withdraw() {
                reentered++;
            } catch {
                refused++;
            }
        }
        if (mode == 3) {
            try root.finalizeExits(10) {
                reentered++;
            } catch {
                refused++;
            }
        }
    }
}
