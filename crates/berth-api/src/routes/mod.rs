//! Routes, one module per resource. Each handler parses, calls the engine, renders.

pub mod build;
pub mod containers;
pub mod distribution;
pub mod exec;
pub mod images;
pub mod links;
pub mod networks;
pub mod system;
pub mod tools;
pub mod volumes;

use axum::routing::{get, post};
use axum::Router;
use berth_engine::Engine;

pub fn router(engine: Engine) -> Router {
    Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/events", get(system::events))
        .route("/system/df", get(system::df))
        .route("/build", post(build::build))
        .route("/build/prune", post(build::prune))
        .route("/auth", post(distribution::auth))
        .route("/swarm/leave", post(system::swarm_leave))
        .route("/swarm", get(system::swarm_inspect))
        .route("/containers/create", post(containers::create))
        .route("/containers/json", get(containers::list))
        .route("/containers/prune", post(containers::prune))
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}/start", post(containers::start))
        .route("/containers/{id}/stop", post(containers::stop))
        .route("/containers/{id}/restart", post(containers::restart))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}/pause", post(containers::pause))
        .route("/containers/{id}/unpause", post(containers::unpause))
        .route("/containers/{id}/wait", post(containers::wait))
        .route("/containers/{id}/rename", post(containers::rename))
        .route("/containers/{id}/update", post(containers::update))
        .route("/containers/{id}/resize", post(containers::resize))
        .route("/containers/{id}/attach", post(containers::attach))
        .route("/containers/{id}/logs", get(containers::logs))
        .route("/containers/{id}/top", get(tools::top))
        .route("/containers/{id}/stats", get(tools::stats))
        .route(
            "/containers/{id}/archive",
            get(tools::archive_get)
                .head(tools::archive_head)
                .put(tools::archive_put),
        )
        .route("/containers/{id}/changes", get(tools::changes))
        .route("/containers/{id}/export", get(tools::export))
        .route("/commit", post(tools::commit))
        .route(
            "/containers/{id}",
            axum::routing::delete(containers::remove),
        )
        .route(
            "/containers/{id}/{alias}",
            axum::routing::delete(links::remove),
        )
        .route("/containers/{id}/exec", post(exec::create))
        .route("/exec/{id}/start", post(exec::start))
        .route("/exec/{id}/resize", post(exec::resize))
        .route("/exec/{id}/json", get(exec::inspect))
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route("/networks/prune", post(networks::prune))
        .route(
            "/networks/{id}",
            get(networks::inspect).delete(networks::remove),
        )
        .route("/networks/{id}/connect", post(networks::connect))
        .route("/networks/{id}/disconnect", post(networks::disconnect))
        .route("/images/json", get(images::list))
        .route("/images/create", post(images::create))
        .route("/images/load", post(images::load))
        .route("/images/get", get(images::save_many))
        .route("/images/prune", post(images::prune))
        .route(
            "/images/{*rest}",
            get(images::by_name_get)
                .post(images::by_name_post)
                .delete(images::by_name_delete),
        )
        .route("/volumes", get(volumes::list))
        .route("/volumes/create", post(volumes::create))
        .route("/volumes/prune", post(volumes::prune))
        .route(
            "/volumes/{name}",
            get(volumes::inspect).delete(volumes::remove),
        )
        .fallback(system::not_found)
        .with_state(engine)
}
