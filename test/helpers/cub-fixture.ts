// Writes small CUB-200-2011 fixtures in the original layout (JPEG images, every annotation file).
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { flat, jpeg, png } from './image-files';

export interface CubImage {
  cls: number;
  train: boolean;
  width: number;
  height: number;
  /** Colour outside and inside the box. */
  background: [number, number, number];
  foreground: [number, number, number];
  box: { x: number; y: number; w: number; h: number };
  /** One entry per part in `PARTS`: [x, y, visible]. */
  parts: [number, number, 0 | 1][];
  format?: 'jpeg' | 'png' | 'corrupt';
}

export const CUB_CLASSES = ['001.Black_footed_Albatross', '002.Laysan_Albatross', '003.Sooty_Albatross'];
export const CUB_PARTS = ['back', 'beak', 'left eye'];

function picture(im: CubImage): number[] {
  const out = flat(im.width, im.height, im.background);
  for (let y = im.box.y; y < im.box.y + im.box.h; y++) {
    for (let x = im.box.x; x < im.box.x + im.box.w; x++)
      out.splice((y * im.width + x) * 3, 3, ...im.foreground);
  }
  return out;
}

/**
 * A CUB_200_2011 directory under a fresh temporary directory; `edit` may rewrite any text file before it is
 * written (for malformed variants). Returns the directory holding CUB_200_2011.
 */
export async function writeCubFixture(
  images: CubImage[],
  edit: (name: string, text: string) => string | undefined = (_n, t) => t,
): Promise<string> {
  const base = await mkdtemp(join(tmpdir(), 'cub-'));
  const root = join(base, 'CUB_200_2011');
  for (const c of CUB_CLASSES) await mkdir(join(root, 'images', c), { recursive: true });
  await mkdir(join(root, 'parts'), { recursive: true });
  const files: Record<string, string[]> = {
    'images.txt': [],
    'image_class_labels.txt': [],
    'train_test_split.txt': [],
    'bounding_boxes.txt': [],
    'classes.txt': CUB_CLASSES.map((c, i) => `${i + 1} ${c}`),
    'parts/parts.txt': CUB_PARTS.map((p, i) => `${i + 1} ${p}`),
    'parts/part_locs.txt': [],
  };
  for (const [i, im] of images.entries()) {
    const id = i + 1;
    const name = CUB_CLASSES[im.cls]!;
    const path = `${name}/${name.slice(4)}_${String(id).padStart(4, '0')}.jpg`;
    const rgb = picture(im);
    const bytes =
      im.format === 'png'
        ? png('rgb', im.width, im.height, rgb)
        : im.format === 'corrupt'
          ? Buffer.from('this is not a picture')
          : await jpeg(im.width, im.height, rgb);
    await writeFile(join(root, 'images', path), bytes);
    files['images.txt']!.push(`${id} ${path}`);
    files['image_class_labels.txt']!.push(`${id} ${im.cls + 1}`);
    files['train_test_split.txt']!.push(`${id} ${im.train ? 1 : 0}`);
    files['bounding_boxes.txt']!.push(`${id} ${im.box.x}.0 ${im.box.y}.0 ${im.box.w}.0 ${im.box.h}.0`);
    im.parts.forEach(([x, y, v], p) => {
      files['parts/part_locs.txt']!.push(`${id} ${p + 1} ${x.toFixed(1)} ${y.toFixed(1)} ${v}`);
    });
  }
  for (const [name, lines] of Object.entries(files)) {
    const text = edit(name, `${lines.join('\n')}\n`);
    if (text !== undefined) await writeFile(join(root, name), text);
  }
  return base;
}
