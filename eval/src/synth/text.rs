//! What the lines say: word lists and the sampler that strings them into labels.
//!
//! Every character here is in PaddleOCR's `ppocr_keys_v1.txt` (the dictionary of the PP-OCR rec models) and in
//! the Chinese fonts that setup installs; `tests/it/synth` checks both. Spaces appear only between Latin words:
//! the PP-OCR rec configs set `use_space_char: true`, which adds the space to that dictionary.
//!
//! Lines are at most [`MAX_CHARS`] characters, PaddleOCR's default `max_text_length`: a longer rec label
//! would be dropped by its label encoder.

use std::sync::LazyLock;

use super::rng::Rng;

/// The longest label (PaddleOCR's `max_text_length`).
pub const MAX_CHARS: usize = 25;

/// Common English words, lower case; the sampler capitalises some.
pub const LATIN_WORDS: &[&str] = &[
    "the", "and", "for", "you", "with", "open", "close", "daily", "hours", "menu", "price", "total", "order", "number",
    "phone", "email", "address", "street", "road", "avenue", "city", "park", "station", "exit", "entrance", "welcome",
    "thank", "please", "sale", "discount", "free", "new", "fresh", "coffee", "tea", "water", "milk", "bread", "rice",
    "noodles", "chicken", "beef", "fish", "apple", "orange", "banana", "market", "store", "shop", "hotel", "bank",
    "school", "library", "museum", "hospital", "office", "floor", "room", "parking", "airport", "train", "bus", "taxi",
    "ticket", "gate", "platform", "north", "south", "east", "west", "center", "service", "customer", "invoice",
    "receipt", "cash", "card", "date", "time", "today", "monday", "friday", "sunday", "january", "march", "july",
    "october", "model", "version", "system", "data", "network", "power", "light", "green", "blue", "red", "black",
    "white", "small", "large", "medium", "quality", "design", "studio", "garden", "river", "lake", "mountain",
    "bridge", "tower", "square", "harbor", "kitchen", "table", "chair", "window", "door", "book", "paper", "letter",
    "story", "music", "movie", "sports", "team", "game", "world", "travel", "energy", "safety", "warning", "caution",
    "danger", "notice", "private", "public", "limited",
];

/// Common Chinese words and short phrases, separated by white space (one string: rustfmt would put each item of a
/// list of wide strings on its own line).
const CHINESE_TEXT: &str = "
中国 北京 上海 广州 深圳 天津 重庆 南京 杭州 成都 武汉 西安 长沙 苏州 公司 有限 责任
科技 发展 服务 中心 管理 工作 生活 学习 学校 大学 医院 银行 超市 商店 饭店 酒店 电话
地址 时间 日期 价格 数量 金额 合计 总计 单价 名称 规格 型号 编号 电子 信息 网络 系统
技术 工程 建设 设计 产品 质量 安全 出口 入口 停车场 禁止吸烟 欢迎光临 谢谢 您好 请勿 注意
小心地滑 开放 营业 办公室 会议 经理 部门 市场 销售 客户 订单 发票 收据 现金 支付 微信
快递 物流 包装 食品 饮料 水果 蔬菜 新鲜 特价 优惠 促销 打折 免费 会员 积分 文化 教育
历史 人民 政府 社会 经济 国际 国家 城市 东路 西路 南街 北街 大道 号楼 广场 大厦 中学
小学 幼儿园 书店 图书馆 博物馆 公园 早上 中午 晚上 今天 明天 昨天 星期一 星期五 春天 夏天
秋天 冬天 汽车 火车 飞机 地铁 公交车 车站 机场 医生 老师 学生 朋友 家庭 儿童 老人 手机
电脑 电视 空调 冰箱 洗衣机 生日快乐 新年快乐 恭喜发财 万事如意 身体健康 山水 河流 湖泊 大海
天气 晴天 下雨 温度 风景 美丽 快乐 幸福 健康 平安 我们 你们 他们 这里 那里 什么 为什么
可以 没有 知道 喜欢 需要 认为 开始 结束 问题 方法 结果 情况 计划 目标 能力 机会 关系
环境 资源 能源 研究 数据 分析 报告 文件 资料 通知 公告 说明 手册 指南 标准 规定 要求
条件 面包 牛奶 咖啡 茶叶 米饭 面条 鸡蛋 牛肉 猪肉 鱼 苹果 香蕉 西瓜 葡萄 红色 绿色 蓝色
黄色 白色 黑色 大号 中号 小号 男装 女装 鞋子 帽子 衣服
";

/// [`CHINESE_TEXT`]'s words, in order.
pub static CHINESE_WORDS: LazyLock<Vec<&'static str>> = LazyLock::new(|| CHINESE_TEXT.split_whitespace().collect());

/// Units that follow a number in Chinese lines.
const CHINESE_UNITS: &[&str] = &[
    "元", "号", "楼", "层", "室", "米", "公斤", "件", "个", "天", "年", "月", "日", "人", "次",
];

/// Full-width punctuation of Chinese text.
pub const CHINESE_PUNCTUATION: &str = "，。：；、！？（）《》“”";

/// ASCII punctuation used in Latin lines.
pub const LATIN_PUNCTUATION: &str = ".,:;!?-/()%&#@+'\"$*";

/// Every character the sampler can emit, but the Latin letters and digits and the space.
pub fn special_characters() -> impl Iterator<Item = char> {
    CHINESE_WORDS
        .iter()
        .chain(CHINESE_UNITS.iter())
        .flat_map(|w| w.chars())
        .chain(CHINESE_PUNCTUATION.chars())
        .chain(LATIN_PUNCTUATION.chars())
        .chain("￥".chars())
}

/// Whether a character is one of the Chinese (CJK or full-width) characters, which only the Chinese fonts draw.
pub fn is_chinese(c: char) -> bool {
    !c.is_ascii()
}

/// A random line of at most `max_chars` characters (at least 1).
pub fn line(rng: &mut Rng, max_chars: usize) -> String {
    let max_chars = max_chars.clamp(1, MAX_CHARS);
    for _ in 0..8 {
        let text = match rng.weighted(&[30, 15, 35, 20]) {
            0 => latin_phrase(rng),
            1 => latin_code(rng),
            2 => chinese_phrase(rng),
            _ => chinese_mixed(rng),
        };
        if text.chars().count() <= max_chars {
            return text;
        }
    }
    // Long draws only: cut at a character boundary and drop a space left at the end.
    let mut text: String = latin_phrase(rng).chars().take(max_chars).collect();
    while text.ends_with(' ') && text.len() > 1 {
        text.pop();
    }
    text
}

/// One to four English words, in one of three cases, sometimes with punctuation.
fn latin_phrase(rng: &mut Rng) -> String {
    let n = rng.int(1, 4) as usize;
    let case = rng.weighted(&[4, 4, 2]);
    let words: Vec<String> = (0..n)
        .map(|i| {
            let word = *rng.pick(LATIN_WORDS);
            match case {
                0 => word.to_string(),
                1 if i == 0 || rng.chance(0.5) => capitalise(word),
                1 => word.to_string(),
                _ => word.to_ascii_uppercase(),
            }
        })
        .collect();
    let mut text = words.join(" ");
    match rng.weighted(&[6, 1, 1, 1, 1]) {
        0 => {}
        1 => text.push('.'),
        2 => text.push('!'),
        3 => text.push(':'),
        _ => text = format!("({text})"),
    }
    text
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// Numbers as signs and receipts print them: prices, dates, times, phone numbers, codes.
fn latin_code(rng: &mut Rng) -> String {
    match rng.below(9) {
        0 => format!("${}.{:02}", rng.int(1, 999), rng.int(0, 99)),
        1 => format!("{}-{:02}-{:02}", rng.int(1990, 2030), rng.int(1, 12), rng.int(1, 28)),
        2 => format!("{:02}:{:02}", rng.int(0, 23), rng.int(0, 59)),
        3 => format!(
            "Tel: {:03}-{:04}-{:04}",
            rng.int(10, 999),
            rng.int(0, 9999),
            rng.int(0, 9999)
        ),
        4 => {
            let letters: String = (0..rng.int(1, 3))
                .map(|_| (b'A' + rng.below(26) as u8) as char)
                .collect();
            format!("{letters}-{}", rng.int(10, 99_999))
        }
        5 => format!("{}%", rng.int(1, 100)),
        6 => format!("No.{}", rng.int(1, 9999)),
        7 => format!("{}*{} mm", rng.int(10, 999), rng.int(10, 999)),
        _ => format!("{}@{}.com", rng.pick(LATIN_WORDS), rng.pick(LATIN_WORDS)),
    }
}

/// One to four Chinese words, sometimes separated or ended by full-width punctuation.
fn chinese_phrase(rng: &mut Rng) -> String {
    let n = rng.int(1, 4) as usize;
    let mut text = String::new();
    for i in 0..n {
        if i > 0 && rng.chance(0.2) {
            text.push(*rng.pick(&['，', '、', '：']));
        }
        text.push_str(rng.pick::<&str>(&CHINESE_WORDS));
    }
    match rng.weighted(&[6, 1, 1, 1]) {
        0 => {}
        1 => text.push('。'),
        2 => text.push('！'),
        _ => text = format!("《{text}》"),
    }
    text
}

/// Chinese with numbers or Latin: `合计：128.00元`, `3号楼`, `北京 2024`.
fn chinese_mixed(rng: &mut Rng) -> String {
    match rng.below(5) {
        0 => format!(
            "{}：{}.{:02}元",
            rng.pick(&CHINESE_WORDS),
            rng.int(1, 9999),
            rng.int(0, 99)
        ),
        1 => format!(
            "{}{}{}",
            rng.pick(&CHINESE_WORDS),
            rng.int(1, 999),
            rng.pick(CHINESE_UNITS)
        ),
        2 => format!("{}（{}）", rng.pick(&CHINESE_WORDS), rng.pick(&CHINESE_WORDS)),
        3 => format!("￥{}.{:02}", rng.int(1, 9999), rng.int(0, 99)),
        _ => format!(
            "{}{}",
            rng.pick(&CHINESE_WORDS),
            capitalise(rng.pick::<&str>(LATIN_WORDS))
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_short_and_trimmed() {
        let mut rng = Rng::new(11);
        for _ in 0..2000 {
            let text = line(&mut rng, MAX_CHARS);
            let n = text.chars().count();
            assert!((1..=MAX_CHARS).contains(&n), "{text:?}");
            assert_eq!(text.trim(), text);
            assert!(!text.contains("  "), "{text:?}");
        }
    }

    #[test]
    fn lines_respect_a_smaller_limit() {
        let mut rng = Rng::new(12);
        for _ in 0..500 {
            assert!(line(&mut rng, 6).chars().count() <= 6);
        }
    }

    #[test]
    fn only_known_characters() {
        let known: std::collections::BTreeSet<char> = special_characters().collect();
        let mut rng = Rng::new(13);
        for _ in 0..2000 {
            let text = line(&mut rng, MAX_CHARS);
            for c in text.chars() {
                assert!(
                    c.is_ascii_alphanumeric() || c == ' ' || known.contains(&c),
                    "{c:?} in {text:?}"
                );
            }
        }
    }
}
