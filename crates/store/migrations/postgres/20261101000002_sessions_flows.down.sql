DROP TABLE selfservice_flows;
DROP TABLE sessions;
