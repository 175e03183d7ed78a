//! Serving components to nodes: `name:tag` is resolved through its Component
//! object, `sha256:<hex>` is taken as is; the bytes follow the reply raw.

use futures::StreamExt as _;
use serde_json::Value;
use skiff_api::component::{ComponentRef, object_name};
use skiff_api::json::Pointer as _;
use skiff_api::resource::by_kind;
use skiff_api::wire::Reply;

use super::frames;
use crate::components::ComponentStore;
use crate::registry::Registry;

/// The digest `image` names, or a refusal for the node to show the user.
pub fn resolve(registry: &Registry, image: &str) -> Result<String, (u16, String)> {
    match ComponentRef::parse(image).map_err(|e| (400, format!("invalid image {image:?}: {e}")))? {
        ComponentRef::Digest(digest) => Ok(digest),
        ComponentRef::Tagged { name, tag } => {
            let rt = by_kind(skiff_api::component::API_VERSION, "Component")
                .ok_or((500, "no Component kind".to_string()))?;
            let object = registry
                .try_get(rt, "", &object_name(&name, &tag))
                .map_err(|e| (500, e.to_string()))?
                .ok_or_else(|| {
                    (
                        404,
                        format!(
                            "component \"{name}:{tag}\" not found: push it with `skiff push FILE --name {name}:{tag}` (or name a local file in `skiff apply`)"
                        ),
                    )
                })?;
            object
                .at("/spec/digest")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or((500, format!("component {name}:{tag} has no digest")))
        }
    }
}

/// Answers one `Fetch` stream.
pub async fn serve(
    registry: &Registry,
    components: &ComponentStore,
    image: &str,
    mut send: quinn::SendStream,
) -> Result<(), frames::StreamError> {
    let found = match resolve(registry, image) {
        Ok(digest) => match components.read(&digest).await {
            Ok(Some(stored)) => Ok((digest, stored)),
            Ok(None) => Err((
                404,
                format!("component {digest} is not stored on the control plane"),
            )),
            Err(e) => Err((500, format!("read component {digest}: {e}"))),
        },
        Err(refusal) => Err(refusal),
    };
    match found {
        Ok((digest, stored)) => {
            let size = stored.size;
            frames::write(
                &mut send,
                &Reply::Component {
                    digest: digest.clone(),
                    size,
                },
            )
            .await?;
            let mut pieces = std::pin::pin!(stored.into_pieces());
            while let Some(piece) = pieces.next().await {
                match piece {
                    Ok(piece) => send.write_all(&piece).await?,
                    Err(e) => {
                        // The node must not take a short component for a whole one.
                        tracing::error!(%digest, error = %e, "read a component while serving it");
                        let _ = send.reset(quinn::VarInt::from_u32(1));
                        return Ok(());
                    }
                }
            }
        }
        Err((code, message)) => {
            frames::write(&mut send, &Reply::Refused { code, message }).await?;
        }
    }
    let _ = send.finish();
    Ok(())
}
