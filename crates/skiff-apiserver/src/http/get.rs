//! `get`: one object, in the form the client asked for (object, `Table` or
//! `PartialObjectMetadata`). Upstream counterpart: `handlers/get.go` (`GetResource`).

use http::StatusCode;

use super::{ApiResult, Ctx};

impl Ctx {
    pub(super) async fn get(&self) -> ApiResult {
        let stored = self
            .app
            .objects
            .get(&self.info, self.ns.as_deref(), self.name())
            .await?;
        Ok(self.respond(StatusCode::OK, stored.obj))
    }
}
