// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title TCP light client
/// @notice Verifies a TCP block header by its finality signature φ against the chain's group
/// key, set at deployment (DESIGN §5.1): φ is the validators' threshold BLS signature (MinSig:
/// signature in G1, key in G2) on (chain id, height, round, SHA-256(header)) under the namespace
/// `tcp/finality`, hashed to G1 exactly as commonware-cryptography does (RFC 9380
/// BLS12381G1_XMD:SHA-256_SSWU_RO_ with the DST below, message = LEB128(len(namespace)) ‖
/// namespace ‖ message). One pairing check through the EIP-2537 precompiles (Prague).
/// @dev Header layout: crates/light/src/header.rs. Height is at offset 0 (u64 big-endian), the
/// state root at offset 56; the rest is bound by the header's hash and not parsed here.
contract TcpLightClient {
    error BadChainId();
    error BadGroupKey();
    error HeaderTooShort();
    error BadSignatureLength();
    error SignatureAtInfinity();
    error PrecompileFailed(address precompile);
    error FinalityDoesNotVerify();
    error DstTooLong();

    address private constant MODEXP = address(0x05);
    address private constant BLS12_G1ADD = address(0x0b);
    address private constant BLS12_G2MSM = address(0x0e);
    address private constant BLS12_PAIRING_CHECK = address(0x0f);
    address private constant BLS12_MAP_FP_TO_G1 = address(0x10);

    // Gas forwarded to each precompile: its Prague price with room for repricing; a malformed
    // input burns at most this much, never the whole transaction.
    uint256 private constant MODEXP_GAS = 2_000;
    uint256 private constant MAP_GAS = 11_000;
    uint256 private constant G1ADD_GAS = 1_000;
    uint256 private constant G2MSM_GAS = 45_000;
    uint256 private constant PAIRING_GAS = 206_000;

    uint256 private constant HEIGHT_OFFSET = 0;
    uint256 private constant STATE_ROOT_OFFSET = 56;
    uint256 private constant HEADER_MIN_BYTES = 88;

    bytes private constant FINALITY_NAMESPACE = "tcp/finality";
    /// commonware-cryptography's MinSig message DST (`G1_MESSAGE`).
    bytes private constant MESSAGE_DST = "BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_POP_";
    /// The base field modulus p, as a 64-byte big-endian MODEXP modulus.
    bytes private constant FIELD_MODULUS =
        hex"000000000000000000000000000000001a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab";
    /// −g₂ in EIP-2537 encoding (x.c0 ‖ x.c1 ‖ y.c0 ‖ y.c1, each padded to 64 bytes).
    bytes private constant NEG_G2 =
        hex"00000000000000000000000000000000024aa2b2f08f0a91260805272dc51051c6e47ad4fa403b02b4510b647ae3d1770bac0326a805bbefd48056c8c121bdb8"
        hex"0000000000000000000000000000000013e02b6052719f607dacd3a088274f65596bd0d09920b61ab5da61bbdc7f5049334cf11213945d57e5ac7d055d042b7e"
        hex"000000000000000000000000000000000d1b3cc2c7027888be51d9ef691d77bcb679afda66c73f17f9ee3837a55024f78c71363275a75d75d86bab79f74782aa"
        hex"0000000000000000000000000000000013fa4d4a0ad8b1ce186ed5061789213d993923066dddaf1040bc3ff59f825c78df74f2d75467e25e0f55f8a00fa030ed";

    uint256 private immutable chainIdLength;
    bytes32 private immutable chainIdWord0;
    bytes32 private immutable chainIdWord1;
    bytes32 private immutable key0;
    bytes32 private immutable key1;
    bytes32 private immutable key2;
    bytes32 private immutable key3;
    bytes32 private immutable key4;
    bytes32 private immutable key5;
    bytes32 private immutable key6;
    bytes32 private immutable key7;

    /// @param chainId_ The TCP chain id (1..64 bytes).
    /// @param groupKey_ The chain's group public key, a G2 point in EIP-2537 encoding (256 bytes);
    /// checked to be on the curve, in the subgroup and not the point at infinity.
    constructor(string memory chainId_, bytes memory groupKey_) {
        bytes memory chain = bytes(chainId_);
        if (chain.length == 0 || chain.length > 64) revert BadChainId();
        bytes memory padded = abi.encodePacked(chain, new bytes(64 - chain.length));
        bytes32 w0;
        bytes32 w1;
        assembly {
            w0 := mload(add(padded, 32))
            w1 := mload(add(padded, 64))
        }
        chainIdLength = chain.length;
        chainIdWord0 = w0;
        chainIdWord1 = w1;
        if (groupKey_.length != 256 || _isZero(groupKey_)) revert BadGroupKey();
        // 1·PK through G2MSM: the precompile refuses a point off the curve or outside the
        // subgroup, and a canonical point comes back unchanged.
        (bool ok, bytes memory same) = BLS12_G2MSM.staticcall{gas: G2MSM_GAS}(abi.encodePacked(groupKey_, uint256(1)));
        if (!ok || keccak256(same) != keccak256(groupKey_)) revert BadGroupKey();
        bytes32[8] memory words;
        assembly {
            for { let i := 0 } lt(i, 8) { i := add(i, 1) } {
                mstore(add(words, mul(i, 32)), mload(add(add(groupKey_, 32), mul(i, 32))))
            }
        }
        (key0, key1, key2, key3, key4, key5, key6, key7) =
            (words[0], words[1], words[2], words[3], words[4], words[5], words[6], words[7]);
    }

    /// @notice Verify `header` (its exact bytes) with φ of `round` (a G1 point, 128 bytes in
    /// EIP-2537 encoding). Reverts unless φ is the group's signature on (chain id, height,
    /// round, SHA-256(header)).
    /// @return height The header's height.
    /// @return stateRoot The state root the header commits to.
    /// @return headerId SHA-256 of the header: the block id.
    function verifyHeader(bytes calldata header, uint32 round, bytes calldata signature)
        public
        view
        returns (uint64 height, bytes32 stateRoot, bytes32 headerId)
    {
        if (header.length < HEADER_MIN_BYTES) revert HeaderTooShort();
        if (signature.length != 128) revert BadSignatureLength();
        if (_isZero(signature)) revert SignatureAtInfinity();
        headerId = sha256(header);
        height = uint64(bytes8(header[HEIGHT_OFFSET:HEIGHT_OFFSET + 8]));
        stateRoot = bytes32(header[STATE_ROOT_OFFSET:STATE_ROOT_OFFSET + 32]);
        bytes memory message = abi.encodePacked(
            uint8(FINALITY_NAMESPACE.length),
            FINALITY_NAMESPACE,
            uint16(chainIdLength),
            _chainId(),
            height,
            round,
            headerId
        );
        bytes memory point = _hashToG1(message, MESSAGE_DST);
        // e(H(m), PK) · e(φ, −g₂) = 1. The precompile refuses points off the curve, outside
        // the subgroup or with a coordinate ≥ p.
        bytes memory input = abi.encodePacked(point, _groupKey(), signature, NEG_G2);
        (bool ok, bytes memory out) = BLS12_PAIRING_CHECK.staticcall{gas: PAIRING_GAS}(input);
        if (!ok) revert PrecompileFailed(BLS12_PAIRING_CHECK);
        if (out.length != 32 || uint256(bytes32(out)) != 1) revert FinalityDoesNotVerify();
    }

    /// @notice RFC 9380 hash_to_curve for BLS12381G1_XMD:SHA-256_SSWU_RO_ with any DST: the
    /// point in EIP-2537 encoding. Exposed so the hashing can be checked against the RFC's
    /// vectors and commonware's.
    function hashToG1(bytes calldata message, bytes calldata dst) external view returns (bytes memory) {
        return _hashToG1(message, dst);
    }

    function groupKey() external view returns (bytes memory) {
        return _groupKey();
    }

    function chainId() external view returns (string memory) {
        bytes memory chain = _chainId();
        return string(chain);
    }

    function _hashToG1(bytes memory message, bytes memory dst) private view returns (bytes memory) {
        (bytes32 b1, bytes32 b2, bytes32 b3, bytes32 b4) = _expandMessageXmd(message, dst);
        bytes memory q0 = _call(BLS12_MAP_FP_TO_G1, MAP_GAS, _reduce(b1, b2), 128);
        bytes memory q1 = _call(BLS12_MAP_FP_TO_G1, MAP_GAS, _reduce(b3, b4), 128);
        // MAP_FP_TO_G1 clears the cofactor of each; clearing is linear, so the sum is
        // clear_cofactor(map(u0) + map(u1)) as the RFC defines.
        return _call(BLS12_G1ADD, G1ADD_GAS, abi.encodePacked(q0, q1), 128);
    }

    /// expand_message_xmd(message, dst, 128) with SHA-256 (RFC 9380 §5.3.1): four 32-byte blocks.
    function _expandMessageXmd(bytes memory message, bytes memory dst)
        private
        pure
        returns (bytes32 b1, bytes32 b2, bytes32 b3, bytes32 b4)
    {
        if (dst.length > 255) revert DstTooLong();
        bytes memory dstPrime = abi.encodePacked(dst, uint8(dst.length));
        bytes32 b0 = sha256(abi.encodePacked(bytes32(0), bytes32(0), message, uint16(128), uint8(0), dstPrime));
        b1 = sha256(abi.encodePacked(b0, uint8(1), dstPrime));
        b2 = sha256(abi.encodePacked(b0 ^ b1, uint8(2), dstPrime));
        b3 = sha256(abi.encodePacked(b0 ^ b2, uint8(3), dstPrime));
        b4 = sha256(abi.encodePacked(b0 ^ b3, uint8(4), dstPrime));
    }

    /// (hi ‖ lo) mod p as a 64-byte EIP-2537 field element, by MODEXP with exponent 1.
    function _reduce(bytes32 hi, bytes32 lo) private view returns (bytes memory) {
        return _call(MODEXP, MODEXP_GAS, abi.encodePacked(uint256(64), uint256(1), uint256(64), hi, lo, uint8(1), FIELD_MODULUS), 64);
    }

    function _call(address precompile, uint256 gasLimit, bytes memory input, uint256 outputLength)
        private
        view
        returns (bytes memory out)
    {
        bool ok;
        (ok, out) = precompile.staticcall{gas: gasLimit}(input);
        if (!ok || out.length != outputLength) revert PrecompileFailed(precompile);
    }

    function _groupKey() private view returns (bytes memory) {
        return abi.encodePacked(key0, key1, key2, key3, key4, key5, key6, key7);
    }

    function _chainId() private view returns (bytes memory chain) {
        chain = abi.encodePacked(chainIdWord0, chainIdWord1);
        uint256 length = chainIdLength;
        assembly {
            mstore(chain, length)
        }
    }

    function _isZero(bytes memory data) private pure returns (bool) {
        for (uint256 i = 0; i < data.length; i++) {
            if (data[i] != 0) return false;
        }
        return true;
    }
}
