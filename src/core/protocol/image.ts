/** The image management group (1), as Zephyr's img_mgmt defines it (IMG_MGMT_ERR_*). */
import { defineGroup } from './define.ts';

export const IMAGE_GROUP = defineGroup({
  name: 'img mgmt',
  id: 1,
  commands: { State: 0, Upload: 1, File: 2, CoreList: 3, CoreLoad: 4, Erase: 5, SlotInfo: 6 },
  errors: {
    UNKNOWN: { rc: 1, text: 'unknown' },
    FLASH_CONFIG_QUERY_FAIL: { rc: 2, text: 'flash config query failed' },
    NO_IMAGE: { rc: 3, text: 'no image' },
    NO_TLVS: { rc: 4, text: 'no TLVs' },
    INVALID_TLV: { rc: 5, text: 'invalid TLV' },
    TLV_MULTIPLE_HASHES_FOUND: { rc: 6, text: 'TLV multiple hashes found' },
    TLV_INVALID_SIZE: { rc: 7, text: 'TLV invalid size' },
    HASH_NOT_FOUND: { rc: 8, text: 'hash not found' },
    NO_FREE_SLOT: { rc: 9, text: 'no free slot' },
    FLASH_OPEN_FAILED: { rc: 10, text: 'flash open failed' },
    FLASH_READ_FAILED: { rc: 11, text: 'flash read failed' },
    FLASH_WRITE_FAILED: { rc: 12, text: 'flash write failed' },
    FLASH_ERASE_FAILED: { rc: 13, text: 'flash erase failed' },
    INVALID_SLOT: { rc: 14, text: 'invalid slot' },
    NO_FREE_MEMORY: { rc: 15, text: 'no free memory' },
    FLASH_CONTEXT_ALREADY_SET: { rc: 16, text: 'flash context already set' },
    FLASH_CONTEXT_NOT_SET: { rc: 17, text: 'flash context not set' },
    FLASH_AREA_DEVICE_NULL: { rc: 18, text: 'flash area device null' },
    INVALID_PAGE_OFFSET: { rc: 19, text: 'invalid page offset' },
    INVALID_OFFSET: { rc: 20, text: 'invalid offset' },
    INVALID_LENGTH: { rc: 21, text: 'invalid length' },
    INVALID_IMAGE_HEADER: { rc: 22, text: 'invalid image header' },
    INVALID_IMAGE_HEADER_MAGIC: { rc: 23, text: 'invalid image header magic' },
    INVALID_HASH: { rc: 24, text: 'invalid hash' },
    INVALID_FLASH_ADDRESS: { rc: 25, text: 'invalid flash address' },
    VERSION_GET_FAILED: { rc: 26, text: 'version get failed' },
    CURRENT_VERSION_IS_NEWER: { rc: 27, text: 'current version is newer' },
    IMAGE_ALREADY_PENDING: { rc: 28, text: 'image already pending' },
    INVALID_IMAGE_VECTOR_TABLE: { rc: 29, text: 'invalid image vector table' },
    INVALID_IMAGE_TOO_LARGE: { rc: 30, text: 'invalid image too large' },
    INVALID_IMAGE_DATA_OVERRUN: { rc: 31, text: 'invalid image data overrun' },
    IMAGE_CONFIRMATION_DENIED: { rc: 32, text: 'image confirmation denied' },
    IMAGE_SETTING_TEST_TO_ACTIVE_DENIED: { rc: 33, text: 'image setting test to active denied' },
    ACTIVE_SLOT_NOT_KNOWN: { rc: 34, text: 'active slot not known' },
  },
});

/** Image group error rc by name. */
export const IMG_ERR = IMAGE_GROUP.rc;

/** Command ids by name. */
export const IMG = IMAGE_GROUP.commands;
