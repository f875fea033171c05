"""Ory's own Kratos SDK (PyPI `ory-kratos-client`, generated from Kratos's OpenAPI document,
strict pydantic models) driven against Tessera by crates/tessera/tests/it/ory_sdk.rs.

Every call goes through the SDK's typed API and models, never raw HTTP: the SDK parses each
answer into its models, so a missing required field, a wrong type or an unknown enum value in
any Tessera answer raises here, exactly as it would in a native app built on the SDK.

    python ory_sdk.py '{"public": "http://127.0.0.1:4433", "admin": "http://127.0.0.1:4434",
                        "email": "...", "password": "...",
                        "imported": {"email": "...", "hashed_password": "...", "password": "..."}}'

Prints one JSON object per line: {"step": NAME, ...what the step saw}. A failing call prints
{"step": NAME, "error": "..."} and exits 1; the last line of a complete run is {"done": true}.
"""

import json
import sys

import ory_kratos_client as ory
from ory_kratos_client.exceptions import ApiException


def emit(step, **values):
    print(json.dumps({"step": step, **values}), flush=True)


def status_of(call):
    """The HTTP status of a call expected to be refused (the SDK raises ApiException)."""
    try:
        call()
    except ApiException as e:
        return e.status
    return 200


def node_attrs(flow, name):
    for n in flow.ui.nodes:
        attrs = n.attributes.actual_instance
        if getattr(attrs, "name", None) == name:
            return attrs
    raise LookupError(f"flow {flow.id} has no node {name!r}")


def main():
    cfg = json.loads(sys.argv[1])
    public = ory.ApiClient(ory.Configuration(host=cfg["public"]))
    admin = ory.ApiClient(ory.Configuration(host=cfg["admin"]))
    frontend = ory.FrontendApi(public)
    identity = ory.IdentityApi(admin)
    email, password = cfg["email"], cfg["password"]

    step = "start"
    try:
        step = "register"
        flow = frontend.create_native_registration_flow()
        reg = frontend.update_registration_flow(
            flow.id,
            ory.UpdateRegistrationFlowBody(
                ory.UpdateRegistrationFlowWithPasswordMethod(
                    method="password", password=password, traits={"email": email}
                )
            ),
        )
        emit(
            step,
            flow_type=flow.type,
            identity_id=reg.identity.id,
            email=reg.identity.traits["email"],
            session_id=reg.session.id if reg.session else None,
            has_token=bool(reg.session_token),
        )
        first_token = reg.session_token

        step = "login"
        flow = frontend.create_native_login_flow()
        ident = node_attrs(flow, "identifier")
        pw = node_attrs(flow, "password")
        login = frontend.update_login_flow(
            flow.id,
            ory.UpdateLoginFlowBody(
                ory.UpdateLoginFlowWithPasswordMethod(
                    method="password", identifier=email, password=password
                )
            ),
        )
        token = login.session_token
        emit(
            step,
            flow_type=flow.type,
            identifier_autocomplete=ident.autocomplete,
            password_autocomplete=pw.autocomplete,
            session_id=login.session.id,
            identity_id=login.session.identity.id,
            has_token=bool(token),
        )

        step = "whoami"
        s = frontend.to_session(x_session_token=token)
        emit(
            step,
            session_id=s.id,
            identity_id=s.identity.id,
            active=s.active,
            aal=s.authenticator_assurance_level,
            methods=[m.method for m in (s.authentication_methods or [])],
        )

        step = "list_my_sessions"
        mine = frontend.list_my_sessions(x_session_token=token)
        emit(step, session_ids=[x.id for x in mine])

        step = "disable_my_session"
        frontend.disable_my_session(reg.session.id, x_session_token=token)
        emit(
            step,
            revoked=reg.session.id,
            revoked_whoami_status=status_of(lambda: frontend.to_session(x_session_token=first_token)),
            current_whoami_status=status_of(lambda: frontend.to_session(x_session_token=token)),
        )

        step = "native_logout"
        frontend.perform_native_logout(ory.PerformNativeLogoutBody(session_token=token))
        emit(step, whoami_status=status_of(lambda: frontend.to_session(x_session_token=token)))

        imp = cfg["imported"]
        step = "admin_create_with_hash"
        created = identity.create_identity(
            ory.CreateIdentityBody(
                schema_id="default",
                traits={"email": imp["email"]},
                credentials=ory.IdentityWithCredentials(
                    password=ory.IdentityWithCredentialsPassword(
                        config=ory.IdentityWithCredentialsPasswordConfig(
                            hashed_password=imp["hashed_password"]
                        )
                    )
                ),
            )
        )
        emit(step, identity_id=created.id, state=created.state, schema_id=created.schema_id)

        step = "login_with_imported_hash"
        flow = frontend.create_native_login_flow()
        imported_login = frontend.update_login_flow(
            flow.id,
            ory.UpdateLoginFlowBody(
                ory.UpdateLoginFlowWithPasswordMethod(
                    method="password", identifier=imp["email"], password=imp["password"]
                )
            ),
        )
        emit(step, identity_id=imported_login.session.identity.id, session_id=imported_login.session.id)

        step = "admin_list"
        everyone = identity.list_identities()
        found = identity.list_identities(credentials_identifier=imp["email"])
        emit(step, identity_ids=[i.id for i in everyone], by_identifier=[i.id for i in found])

        step = "admin_get_with_credentials"
        got = identity.get_identity(created.id, include_credential=["password"])
        password_cred = (got.credentials or {}).get("password")
        emit(
            step,
            identity_id=got.id,
            email=got.traits["email"],
            password_identifiers=password_cred.identifiers if password_cred else None,
            credential_type=password_cred.type if password_cred else None,
        )

        step = "admin_patch"
        patched = identity.patch_identity(
            created.id,
            [
                ory.JsonPatch(op="replace", path="/traits/email", value=imp["new_email"]),
                ory.JsonPatch(op="add", path="/metadata_public", value={"plan": "sdk"}),
            ],
        )
        emit(step, email=patched.traits["email"], metadata_public=patched.metadata_public)

        step = "admin_identity_sessions"
        sessions = identity.list_identity_sessions(created.id)
        emit(step, session_ids=[x.id for x in sessions], identity_ids=[x.identity.id for x in sessions if x.identity])

        step = "admin_delete"
        identity.delete_identity(created.id)
        emit(step, get_status=status_of(lambda: identity.get_identity(created.id)))

        step = "schemas"
        listed = identity.list_identity_schemas()
        default = identity.get_identity_schema("default")
        emit(
            step,
            ids=[x.id for x in listed],
            default_type=default.get("type") if isinstance(default, dict) else None,
            default_has_email=isinstance(default, dict)
            and "email" in default.get("properties", {}).get("traits", {}).get("properties", {}),
        )
    except Exception as e:  # noqa: BLE001 - every failure is reported with its step
        detail = f"{type(e).__name__}: {e}"
        emit(step, error=detail)
        sys.exit(1)
    print(json.dumps({"done": True}), flush=True)


if __name__ == "__main__":
    main()
