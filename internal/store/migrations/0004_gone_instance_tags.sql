-- A gone instance's history needs only its node, id and name: the tags and
-- meta earlier versions left in such rows are dropped.
UPDATE instances SET tags = '[]', meta = '{}' WHERE registered = 0 AND (tags != '[]' OR meta != '{}');
