DROP TABLE session_token_exchanges;
DROP TABLE selfservice_errors;
DROP TABLE oidc_states;
