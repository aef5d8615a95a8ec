ALTER TABLE {{prefix}}users CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
UPDATE {{prefix}}users SET raw_app_meta_data = '{}' WHERE raw_app_meta_data = '';
UPDATE {{prefix}}users SET raw_user_meta_data = '{}' WHERE raw_user_meta_data = '';
ALTER TABLE {{prefix}}users MODIFY raw_app_meta_data JSON NULL DEFAULT NULL, MODIFY raw_user_meta_data JSON NULL DEFAULT NULL;
