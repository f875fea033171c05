DROP TABLE op_subjects;
