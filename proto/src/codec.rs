//! The protobuf codec of every fedq service: prost's, except that bytes which
//! do not decode are the sender's error (`InvalidArgument`), not the
//! receiver's (`Internal`, prost's choice). A node that answers `Internal` to a
//! malformed request would report a fault of its own that it does not have,
//! and the coordinator would call it an `error` rather than `invalid`.

use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// Named by the generated services (`codec_path` in `build.rs`).
#[derive(Debug, Clone)]
pub struct FedqCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for FedqCodec<T, U> {
    fn default() -> Self {
        Self(ProstCodec::default())
    }
}

impl<T, U> Codec for FedqCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = SendersBytes<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        SendersBytes(self.0.decoder())
    }
}

/// prost's decoder, with a decode failure charged to whoever sent the bytes.
#[derive(Debug, Clone)]
pub struct SendersBytes<U>(ProstDecoder<U>);

impl<U: Message + Default> Decoder for SendersBytes<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|status| {
            Status::invalid_argument(format!(
                "message does not decode as fedq.v1 protobuf: {}",
                status.message()
            ))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
