//! The protobuf wire format, as far as Kubernetes uses it: a message is a run of
//! (key, value) pairs, the key a varint of field number and wire type. Every read
//! is checked against the end of the buffer, so a truncated or lying body is an
//! error, never a panic.

/// One field's value, undecoded beyond its wire type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WireValue<'a> {
    /// Wire type 0: int32, int64, bool (and enums, which Kubernetes does not use).
    Varint(u64),
    /// Wire type 1: double, fixed64.
    Fixed64(u64),
    /// Wire type 2: string, bytes, an embedded message, a packed repeated field.
    Bytes(&'a [u8]),
    /// Wire type 5: float, fixed32.
    Fixed32(u32),
}

/// What is wrong with the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum WireError {
    #[error("truncated varint")]
    TruncatedVarint,
    #[error("varint longer than 10 bytes")]
    VarintTooLong,
    #[error("length {0} runs past the end of the message")]
    LengthPastEnd(u64),
    #[error("truncated fixed-width value")]
    TruncatedFixed,
    #[error("field number 0")]
    FieldZero,
    #[error("wire type {0} (groups are not used by Kubernetes)")]
    Group(u8),
    #[error("invalid wire type {0}")]
    InvalidWireType(u8),
}

/// Reads the fields of one message in order.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
}

impl WireValue<'_> {
    /// The wire type number, for error messages.
    pub(super) fn wire_type(&self) -> u8 {
        match self {
            WireValue::Varint(_) => 0,
            WireValue::Fixed64(_) => 1,
            WireValue::Bytes(_) => 2,
            WireValue::Fixed32(_) => 5,
        }
    }
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// The next field, or `None` at the end of the message.
    pub(super) fn next_field(&mut self) -> Result<Option<(u32, WireValue<'a>)>, WireError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 {
            return Err(WireError::FieldZero);
        }
        // Field numbers are 29 bits; anything wider cannot name a schema field, so
        // it is saturated rather than rejected, and then skipped as unknown.
        let number = u32::try_from(number).unwrap_or(u32::MAX);
        let value = match (key & 7) as u8 {
            0 => WireValue::Varint(self.varint()?),
            1 => WireValue::Fixed64(u64::from_le_bytes(self.fixed::<8>()?)),
            2 => {
                let len = self.varint()?;
                let n = usize::try_from(len)
                    .ok()
                    .filter(|n| *n <= self.buf.len())
                    .ok_or(WireError::LengthPastEnd(len))?;
                let (bytes, rest) = self.buf.split_at(n);
                self.buf = rest;
                WireValue::Bytes(bytes)
            }
            5 => WireValue::Fixed32(u32::from_le_bytes(self.fixed::<4>()?)),
            t @ (3 | 4) => return Err(WireError::Group(t)),
            t => return Err(WireError::InvalidWireType(t)),
        };
        Ok(Some((number, value)))
    }

    /// Reads a varint off the front (for packed repeated fields, which are a run
    /// of bare values).
    pub(super) fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for (i, byte) in self.buf.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        if self.buf.len() >= 10 {
            Err(WireError::VarintTooLong)
        } else {
            Err(WireError::TruncatedVarint)
        }
    }

    /// Reads `N` bytes of a fixed-width value off the front.
    pub(super) fn fixed<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let (head, rest) = self
            .buf
            .split_first_chunk::<N>()
            .ok_or(WireError::TruncatedFixed)?;
        self.buf = rest;
        Ok(*head)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(buf: &[u8]) -> Result<Vec<(u32, WireValue<'_>)>, WireError> {
        let mut r = Reader::new(buf);
        let mut out = Vec::new();
        while let Some(f) = r.next_field()? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn reads_each_wire_type() {
        let buf = [
            0x08, 0x96, 0x01, // 1: varint 150
            0x11, 1, 0, 0, 0, 0, 0, 0, 0, // 2: fixed64 1
            0x1a, 0x02, b'h', b'i', // 3: bytes "hi"
            0x25, 2, 0, 0, 0, // 4: fixed32 2
        ];
        assert_eq!(
            fields(&buf).unwrap(),
            vec![
                (1, WireValue::Varint(150)),
                (2, WireValue::Fixed64(1)),
                (3, WireValue::Bytes(b"hi")),
                (4, WireValue::Fixed32(2)),
            ]
        );
    }

    #[test]
    fn negative_int32_is_a_ten_byte_varint() {
        let buf = [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        let (_, v) = fields(&buf).unwrap()[0];
        assert_eq!(v, WireValue::Varint(u64::MAX));
        assert_eq!(u64::MAX as i64 as i32, -1);
    }

    #[test]
    fn rejects_malformed_input() {
        assert_eq!(fields(&[0x08]), Err(WireError::TruncatedVarint));
        assert_eq!(fields(&[0x08, 0x80]), Err(WireError::TruncatedVarint));
        assert_eq!(
            fields(&[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ]),
            Err(WireError::VarintTooLong)
        );
        assert_eq!(
            fields(&[0x0a, 0x05, b'a']),
            Err(WireError::LengthPastEnd(5))
        );
        assert_eq!(
            fields(&[
                0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ]),
            Err(WireError::LengthPastEnd(u64::MAX))
        );
        assert_eq!(fields(&[0x09, 1, 2]), Err(WireError::TruncatedFixed));
        assert_eq!(fields(&[0x0d, 1]), Err(WireError::TruncatedFixed));
        assert_eq!(fields(&[0x00, 0x00]), Err(WireError::FieldZero));
        assert_eq!(fields(&[0x0b]), Err(WireError::Group(3)));
        assert_eq!(fields(&[0x0e]), Err(WireError::InvalidWireType(6)));
    }

    #[test]
    fn empty_message_has_no_fields() {
        assert_eq!(fields(&[]).unwrap(), vec![]);
    }
}
