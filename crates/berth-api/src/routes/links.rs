//! `DELETE /containers/{parent}/{alias}?link=1`: removing a legacy link by its name.
//!
//! Docker names a link `/parent/alias`; the route takes the two segments apart. Without
//! `link=1` such a name would be a container named by its link, which berth does not
//! register, so it is not found.

use crate::empty;
use crate::error::ApiResult;
use crate::query::Q;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use berth_engine::{Engine, Error};

pub async fn remove(
    State(e): State<Engine>,
    Path((parent, alias)): Path<(String, String)>,
    q: Q,
) -> ApiResult<Response> {
    if !q.bool("link") {
        return Err(Error::NotFound(format!("No such container: {parent}/{alias}")).into());
    }
    e.remove_link(&parent, &alias)?;
    Ok(empty(StatusCode::NO_CONTENT))
}
