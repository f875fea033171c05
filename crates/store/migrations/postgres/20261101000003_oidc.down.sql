DROP TABLE selfservice_errors;
DROP TABLE oidc_states;
